# Mask R-CNN + FPN + Swin-S on COCO, 3x: 36 epochs (lr x0.1 after 27 and 33), multi-scale 480-800 + random crop;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP: 48.5 / 43.3; 69M params, 359G FLOPs (microsoft/Swin-Transformer README).
#   mmdet 2.x, the same recipe: 48.2 / 43.2 (open-mmlab/mmdetection configs/swin (metafile.yml)).
# Train: tools/dist_train.sh configs/mask_rcnn_swin_s_coco_3x.py 8
_base_ = ['./_base_/mask_rcnn_coco_3x.py', './_base_/backbones/swin_s.py']

model = dict(backbone=_base_.backbone, neck=dict(in_channels=_base_.backbone_channels))
