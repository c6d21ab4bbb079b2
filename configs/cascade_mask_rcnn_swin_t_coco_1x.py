# Cascade Mask R-CNN (4conv1fc box heads, GIoU) + FPN + Swin-T on COCO, 1x: 12 epochs (lr x0.1 after 8 and 11), single-scale (1333, 800);
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP: 48.1 / 41.7 (official, trained with the 3x multi-scale augmentation for 12 epochs); 86M params, 745G FLOPs (Swin-Transformer-Object-Detection README).
# Train: tools/dist_train.sh configs/cascade_mask_rcnn_swin_t_coco_1x.py 8
_base_ = ['./_base_/cascade_mask_rcnn_coco_1x.py', './_base_/backbones/swin_t.py']

model = dict(
    backbone=dict(_base_.backbone, drop_path_rate=0.0),  # the official 1x config's
    neck=dict(in_channels=_base_.backbone_channels))
