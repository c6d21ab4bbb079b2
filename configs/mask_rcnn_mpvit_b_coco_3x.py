# Mask R-CNN + FPN + MPViT-B on COCO, 3x: 36 epochs (lr x0.1 after 28 and 33), multi-scale 480-800 + random crop;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05, gradient clipping 1.0
# (the Detectron2 recipe of the MPViT repository, detectron2/configs/maskrcnn/).
# Published box AP / mask AP: 49.5 / 44.5; 95M params, 503G FLOPs (youngwanLEE/MPViT README).
# Train: tools/dist_train.sh configs/mask_rcnn_mpvit_b_coco_3x.py 8
_base_ = ['./_base_/mask_rcnn_mpvit_coco_3x.py']

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
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://dl.dropbox.com/s/la8w31m0apj2830/mpvit_base.pth')),
    neck=dict(in_channels=[224, 368, 480, 480]))
