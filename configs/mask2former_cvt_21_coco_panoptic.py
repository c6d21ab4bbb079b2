# Mask2Former + CvT-21 on COCO panoptic segmentation: mmdet's Mask2Former recipe, 50 epochs
# (368,750 iterations, lr x0.1 after 327,778 and 355,092), large-scale jittering at 1024;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05, backbone lr x0.1.
# Published PQ / box AP / mask AP: no published figure for Mask2Former + CvT-21 with this recipe.
# Train: tools/dist_train.sh configs/mask2former_cvt_21_coco_panoptic.py 8
_base_ = ['./_base_/mask2former_coco_panoptic.py', './_base_/backbones/cvt_21.py']

model = dict(
    backbone=_base_.backbone,
    panoptic_head=dict(in_channels=_base_.backbone_channels))
