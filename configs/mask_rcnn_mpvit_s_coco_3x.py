# Mask R-CNN + FPN + MPViT-S on COCO, 3x: 36 epochs (lr x0.1 after 28 and 33), multi-scale 480-800 + random crop;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05, gradient clipping 1.0
# (the Detectron2 recipe of the MPViT repository, detectron2/configs/maskrcnn/).
# Published box AP / mask AP: 48.4 / 43.9; 43M params, 268G FLOPs (youngwanLEE/MPViT README).
# Train: tools/dist_train.sh configs/mask_rcnn_mpvit_s_coco_3x.py 8
_base_ = ['./_base_/mask_rcnn_mpvit_coco_3x.py', './_base_/backbones/mpvit_s.py']

model = dict(backbone=_base_.backbone, neck=dict(in_channels=_base_.backbone_channels))
