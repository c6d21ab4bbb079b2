# UperNet + Swin-L (ImageNet-22K weights), ADE20K 640: the recipe of
# upernet_swin_l_in22k_ade20k_640.py, trained with FlexibleRunner + DeepSpeed ZeRO-3
# (configs/_base_/runtime/deepspeed.py; needs the deepspeed package, not installed by this
# repository) and activation checkpointing in the backbone (with_cp=True).
# Train: tools/dist_train.sh configs/scaleout/upernet_swin_l_in22k_ade20k_640_deepspeed.py 8
_base_ = ['../upernet_swin_l_in22k_ade20k_640.py', '../_base_/runtime/deepspeed.py']

model = dict(backbone=dict(with_cp=True))
optim_wrapper = dict(type='DeepSpeedOptimWrapper')
