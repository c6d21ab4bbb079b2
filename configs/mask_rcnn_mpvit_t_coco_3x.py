# Mask R-CNN + FPN + MPViT-T on COCO, 3x: 36 epochs (lr x0.1 after 28 and 33), multi-scale 480-800 + random crop;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05, gradient clipping 1.0
# (the Detectron2 recipe of the MPViT repository, detectron2/configs/maskrcnn/).
# Published box AP / mask AP: 44.8 / 41.0; 28M params, 216G FLOPs (youngwanLEE/MPViT README).
# Train: tools/dist_train.sh configs/mask_rcnn_mpvit_t_coco_3x.py 8
_base_ = ['./_base_/mask_rcnn_mpvit_coco_3x.py', './_base_/backbones/mpvit_t.py']

model = dict(backbone=_base_.backbone, neck=dict(in_channels=_base_.backbone_channels))
