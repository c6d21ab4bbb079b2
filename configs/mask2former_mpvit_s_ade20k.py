# Mask2Former + MPViT-S on ADE20K: mmseg's Mask2Former recipe, 160k iterations, crop 512x512,
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05, backbone lr x0.1, poly
# (power 0.9); test: 'whole' mode at (2048, 512).
# Published mIoU: no published figure for Mask2Former + MPViT-S with this recipe.
# Train: tools/dist_train.sh configs/mask2former_mpvit_s_ade20k.py 8
_base_ = ['./_base_/mask2former_ade20k_160k.py', './_base_/backbones/mpvit_s.py']

model = dict(
    backbone=_base_.backbone,
    decode_head=dict(in_channels=_base_.backbone_channels))
