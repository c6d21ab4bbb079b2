# Mask R-CNN + FPN on COCO, 1x (shared by every configs/mask_rcnn_*_coco_1x.py): mmdet's Mask R-CNN
# with the recipe of coco_1x.py. Leaf configs set the backbone (type, arch, drop path, official
# weights) and the neck in_channels.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', './coco_1x.py']
