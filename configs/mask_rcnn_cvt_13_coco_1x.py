# Mask R-CNN + FPN + CvT-13 on COCO, 1x: 12 epochs (lr x0.1 after 8 and 11), single-scale (1333, 800);
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP: none published.
# Train: tools/dist_train.sh configs/mask_rcnn_cvt_13_coco_1x.py 8
_base_ = ['./_base_/mask_rcnn_coco_1x.py', './_base_/backbones/cvt_13.py']

model = dict(backbone=_base_.backbone, neck=dict(in_channels=_base_.backbone_channels))
