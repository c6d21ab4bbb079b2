# Mask R-CNN + FPN on COCO, 3x with multi-scale + random-crop training (shared by every
# configs/mask_rcnn_*_coco_3x.py): mmdet's Mask R-CNN with the recipe of coco_3x.py.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', './coco_3x.py']
