# Cascade Mask R-CNN + FPN on COCO, 1x (the recipe of configs/cascade_mask_rcnn_*_coco_1x.py): the
# model of models/cascade_mask_rcnn.py (the official Swin configs' 4conv1fc GIoU box heads) with
# the recipe of coco_1x.py (single-scale).
_base_ = ['./models/cascade_mask_rcnn.py', './coco_1x.py']
