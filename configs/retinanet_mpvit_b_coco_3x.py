# RetinaNet + FPN (P3-P7) + MPViT-B on COCO, 3x: 36 epochs (lr x0.1 after 28 and 33), multi-scale 480-800 + random crop;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05, gradient clipping 1.0
# (the Detectron2 recipe of the MPViT repository, detectron2/configs/retinanet/).
# Published box AP: 48.3; 85M params, 482G FLOPs (youngwanLEE/MPViT README).
# Train: tools/dist_train.sh configs/retinanet_mpvit_b_coco_3x.py 8
_base_ = ['./_base_/retinanet_coco_3x.py', './_base_/backbones/mpvit_b.py']

model = dict(backbone=_base_.backbone,
             neck=dict(in_channels=_base_.backbone_channels[1:]))  # C3-C5
