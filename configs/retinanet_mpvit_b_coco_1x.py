# RetinaNet + FPN (P3-P7) + MPViT-B on COCO, 1x: 12 epochs (lr x0.1 after 8 and 11), single-scale (1333, 800);
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05, gradient clipping 1.0
# (the Detectron2 recipe of the MPViT repository, detectron2/configs/retinanet/).
# Published box AP: 47.0; 85M params, 482G FLOPs (youngwanLEE/MPViT README).
# Train: tools/dist_train.sh configs/retinanet_mpvit_b_coco_1x.py 8
_base_ = ['./_base_/retinanet_coco_1x.py']

# Backbone weights: the official release (ImageNet-1K, 224;
# youngwanLEE/MPViT README).
# The classification release; the official MPViT dense recipes start from converted copies of
# the same ImageNet-1K weights (mpvit_*_d2.pth for Detectron2, mpvit_*_mm.pth for mmseg 0.x).
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
model = dict(
    backbone=dict(
        _delete_=True,
        type='MPViT',
        arch='base',
        drop_path_rate=0.4,
        norm_cfg=dict(type='SyncBN', requires_grad=True),  # BN statistics over all GPUs
        out_indices=(1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://dl.dropbox.com/s/la8w31m0apj2830/mpvit_base.pth')),
    neck=dict(in_channels=[368, 480, 480]))
