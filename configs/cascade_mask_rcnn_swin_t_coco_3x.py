# Cascade Mask R-CNN (4conv1fc box heads, GIoU) + FPN + Swin-T on COCO, 3x: 36 epochs (lr x0.1 after 27 and 33), multi-scale 480-800 + random crop;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP: 50.4 / 43.7; 86M params, 745G FLOPs (microsoft/Swin-Transformer README).
# Train: tools/dist_train.sh configs/cascade_mask_rcnn_swin_t_coco_3x.py 8
_base_ = ['./_base_/cascade_mask_rcnn_coco_3x.py', './_base_/backbones/swin_t.py']

model = dict(backbone=_base_.backbone, neck=dict(in_channels=_base_.backbone_channels))
