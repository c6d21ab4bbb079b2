# Mask R-CNN + FPN on COCO, 3x with multi-scale + random-crop training (the recipe of every
# configs/mask_rcnn_*_coco_3x.py): the model of models/mask_rcnn.py with the recipe of coco_3x.py.
_base_ = ['./models/mask_rcnn.py', './coco_3x.py']
