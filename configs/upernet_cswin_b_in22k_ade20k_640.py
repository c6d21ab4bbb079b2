# UperNet + CSWin-B (ImageNet-22K weights) on ADE20K: 160k iterations, crop 640x640, 16 images
# per iteration (8 GPUs x 2 images), AdamW lr 6e-5 / wd 0.01, warm-up 1500 iterations then poly;
# test: 'whole' mode at (2560, 640); --tta: multi-scale 0.5-1.75 + flip. No official config of
# this result was released: the 512 recipe at crop 640 (the papers' description).
# Published mIoU: 51.8 / 52.6; 109M params, 1941G FLOPs (microsoft/CSWin-Transformer README).
# Train: tools/dist_train.sh configs/upernet_cswin_b_in22k_ade20k_640.py 8
_base_ = ['./_base_/upernet_ade20k_640_160k.py', './_base_/backbones/cswin_b_in22k.py']

model = dict(
    backbone=_base_.backbone,
    decode_head=dict(in_channels=_base_.backbone_channels),
    auxiliary_head=dict(in_channels=_base_.backbone_channels[2]))
