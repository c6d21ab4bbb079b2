# DINO (4 scales) + MPViT-B on COCO detection: mmdet's DINO recipe, 12 epochs (lr x0.1 after 11),
# multi-scale 480-800 + random crop; 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 /
# wd 1e-4, backbone lr x0.1; the backbone's levels 1..3 (strides 8-32) into the neck.
# Published box AP: no published figure for DINO-4scale + MPViT-B with this recipe.
# Train: tools/dist_train.sh configs/dino_mpvit_b_coco_12e.py 8
_base_ = ['./_base_/dino_coco_12e.py', './_base_/backbones/mpvit_b.py']

model = dict(backbone=_base_.backbone, neck=dict(in_channels=_base_.backbone_channels[1:]))
