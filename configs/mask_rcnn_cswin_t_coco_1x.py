# Mask R-CNN + FPN + CSWin-T on COCO, 1x: 12 epochs (lr x0.1 after 8 and 11), single-scale (1333, 800);
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP: 46.7 / 42.2 (SPEC, from the paper; not in the README).
# Train: tools/dist_train.sh configs/mask_rcnn_cswin_t_coco_1x.py 8
_base_ = ['./_base_/mask_rcnn_coco_1x.py']

# Backbone weights: the official release (ImageNet-1K, 224, split 1, 2, 7, 7;
# microsoft/CSWin-Transformer README).
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
model = dict(
    backbone=dict(
        _delete_=True,
        type='CSWin',
        arch='tiny',
        drop_path_rate=0.2,  # not published; our choice
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/microsoft/CSWin-Transformer/releases/download/v0.1.0/cswin_tiny_224.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
