# RetinaNet + FPN (P3-P7) + MPViT-XS on COCO, 1x: 12 epochs (lr x0.1 after 8 and 11), single-scale (1333, 800);
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05, gradient clipping 1.0
# (the Detectron2 recipe of the MPViT repository, detectron2/configs/retinanet/).
# Published box AP: 43.8; 20M params, 211G FLOPs (youngwanLEE/MPViT README).
# Train: tools/dist_train.sh configs/retinanet_mpvit_xs_coco_1x.py 8
_base_ = ['./_base_/retinanet_coco_1x.py', './_base_/backbones/mpvit_xs.py']

model = dict(backbone=_base_.backbone,
             neck=dict(in_channels=_base_.backbone_channels[1:]))  # C3-C5
