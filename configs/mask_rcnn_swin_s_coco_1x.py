# Mask R-CNN + FPN + Swin-S on COCO, 1x: 12 epochs (lr x0.1 after 8 and 11), single-scale (1333, 800);
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP: none published.
# Train: tools/dist_train.sh configs/mask_rcnn_swin_s_coco_1x.py 8
_base_ = ['./_base_/mask_rcnn_coco_1x.py']

# Backbone weights: the official release (ImageNet-1K, 224, window 7;
# microsoft/Swin-Transformer README).
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
model = dict(
    backbone=dict(
        _delete_=True,
        type='Swin',
        arch='small',
        drop_path_rate=0.2,  # not published; our choice
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
