# UperNet + Swin-B on ADE20K: 160k iterations, crop 512x512, 16 images per iteration
# (8 GPUs x 2 images), AdamW lr 6e-5 / wd 0.01, warm-up 1500 iterations then poly (power 1);
# test: 'whole' mode at (2048, 512); --tta: multi-scale 0.5-1.75 + flip.
# Published mIoU: 48.13 / 49.72; 121M params, 1188G FLOPs (microsoft/Swin-Transformer README).
#   mmseg 1.x, the same recipe and weights: 47.99 / 49.57 (open-mmlab/mmsegmentation configs/swin (metafile.yaml)).
# Train: tools/dist_train.sh configs/upernet_swin_b_ade20k.py 8
_base_ = ['./_base_/upernet_ade20k_160k.py', './_base_/backbones/swin_b.py']

model = dict(
    backbone=_base_.backbone,
    decode_head=dict(in_channels=_base_.backbone_channels),
    auxiliary_head=dict(in_channels=_base_.backbone_channels[2]))
