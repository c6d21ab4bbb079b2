# Mask2Former + Swin-S on ADE20K: mmseg's Mask2Former recipe, 160k iterations, crop 512x512,
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05, backbone lr x0.1, poly
# (power 0.9); test: 'whole' mode at (2048, 512).
# Published mIoU: 51.24 (mmseg 1.x, mask2former_swin-s_8xb2-160k_ade20k-512x512, the same
#   ImageNet-1K weights converted; open-mmlab/mmsegmentation configs/mask2former
#   (metafile.yaml)).
# Train: tools/dist_train.sh configs/mask2former_swin_s_ade20k.py 8
_base_ = ['./_base_/mask2former_ade20k_160k.py', './_base_/backbones/swin_s.py']

model = dict(
    backbone=dict(_base_.backbone, drop_path_rate=0.3),  # mmseg's Mask2Former Swin recipe
    decode_head=dict(in_channels=_base_.backbone_channels))
