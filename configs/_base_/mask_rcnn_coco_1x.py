# Mask R-CNN + FPN on COCO, 1x (the recipe of every configs/mask_rcnn_*_coco_1x.py): the model of
# models/mask_rcnn.py with the recipe of coco_1x.py.
_base_ = ['./models/mask_rcnn.py', './coco_1x.py']
