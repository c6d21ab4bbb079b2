# Mask R-CNN + FPN + Swin-T on COCO, 3x: 36 epochs (lr x0.1 after 27 and 33), multi-scale 480-800 + random crop;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP: 46.0 / 41.6; 48M params, 267G FLOPs (microsoft/Swin-Transformer README).
# Train: tools/dist_train.sh configs/mask_rcnn_swin_t_coco_3x.py 8
_base_ = ['./_base_/mask_rcnn_coco_3x.py']

# Backbone weights: the official release (ImageNet-1K, 224, window 7;
# microsoft/Swin-Transformer README).
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
model = dict(
    backbone=dict(
        _delete_=True,
        type='Swin',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
