# UperNet + CSWin-L (ImageNet-22K weights), ADE20K 640: the recipe of
# upernet_cswin_l_in22k_ade20k_640.py (same model, data, schedule, 16 images per iteration), trained
# with FlexibleRunner + FSDP (configs/_base_/runtime/fsdp.py: one FSDP unit per backbone block,
# full-state checkpoints) and activation checkpointing in the backbone (with_cp=True: each block
# recomputed in backward). Checkpoints are ordinary whole-model files: test them with the config
# without _fsdp.
# Train: tools/dist_train.sh configs/scaleout/upernet_cswin_l_in22k_ade20k_640_fsdp.py 8
_base_ = ['../upernet_cswin_l_in22k_ade20k_640.py', '../_base_/runtime/fsdp.py']

model = dict(backbone=dict(with_cp=True))
optim_wrapper = dict(type='FSDPOptimWrapper')  # clip_grad over the whole model
