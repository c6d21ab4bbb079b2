# Mask R-CNN + FPN + CvT-21 on COCO, 3x: 36 epochs (lr x0.1 after 27 and 33), multi-scale 480-800 + random crop;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP: none published.
# Train: tools/dist_train.sh configs/mask_rcnn_cvt_21_coco_3x.py 8
_base_ = ['./_base_/mask_rcnn_coco_3x.py', './_base_/backbones/cvt_21.py']

model = dict(backbone=_base_.backbone, neck=dict(in_channels=_base_.backbone_channels))
