# Cascade Mask R-CNN (4conv1fc box heads, GIoU) + FPN + CSWin-T on COCO, 3x: 36 epochs (lr x0.1 after 27 and 33), multi-scale 480-800 + random crop;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP: 52.5 / 45.3; 80M params, 757G FLOPs (microsoft/CSWin-Transformer README).
# Train: tools/dist_train.sh configs/cascade_mask_rcnn_cswin_t_coco_3x.py 8
_base_ = ['./_base_/cascade_mask_rcnn_coco_3x.py', './_base_/backbones/cswin_t.py']

model = dict(backbone=_base_.backbone, neck=dict(in_channels=_base_.backbone_channels))
