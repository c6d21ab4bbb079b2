# Cascade Mask R-CNN + FPN on COCO, 3x with multi-scale + random-crop training (the recipe of every
# configs/cascade_mask_rcnn_*_coco_3x.py): the model of models/cascade_mask_rcnn.py (the official
# Swin configs' 4conv1fc GIoU box heads) with the recipe of coco_3x.py.
_base_ = ['./models/cascade_mask_rcnn.py', './coco_3x.py']
