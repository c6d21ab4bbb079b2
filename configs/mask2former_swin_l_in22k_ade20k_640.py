# Mask2Former + Swin-L (ImageNet-22K weights) on ADE20K: mmseg's Mask2Former recipe,
# 160k iterations, crop 640x640, 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 /
# wd 0.05, backbone lr x0.1, poly (power 0.9); test: 'whole' mode at (2560, 640).
# Published mIoU: 56.01 (mmseg 1.x,
#   mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640, the same ImageNet-22K weights
#   converted; open-mmlab/mmsegmentation configs/mask2former (metafile.yaml)).
# Train: tools/dist_train.sh configs/mask2former_swin_l_in22k_ade20k_640.py 8
_base_ = ['./_base_/mask2former_ade20k_640_160k.py', './_base_/backbones/swin_l_in22k.py']

model = dict(
    backbone=_base_.backbone,
    decode_head=dict(in_channels=_base_.backbone_channels))
