# Mask R-CNN + FPN + MPViT-S on COCO, 1x: 12 epochs (lr x0.1 after 8 and 11), single-scale (1333, 800);
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05, gradient clipping 1.0
# (the Detectron2 recipe of the MPViT repository, detectron2/configs/maskrcnn/).
# Published box AP / mask AP: 46.4 / 42.4; 43M params, 268G FLOPs (youngwanLEE/MPViT README).
# Train: tools/dist_train.sh configs/mask_rcnn_mpvit_s_coco_1x.py 8
_base_ = ['./_base_/mask_rcnn_mpvit_coco_1x.py', './_base_/backbones/mpvit_s.py']

model = dict(backbone=_base_.backbone, neck=dict(in_channels=_base_.backbone_channels))
