# Mask R-CNN + FPN + CSWin-B on COCO, 3x: 36 epochs (lr x0.1 after 27 and 33), multi-scale 480-800 + random crop;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP: 50.8 / 44.9; 97M params, 526G FLOPs (microsoft/CSWin-Transformer README).
# Train: tools/dist_train.sh configs/mask_rcnn_cswin_b_coco_3x.py 8
_base_ = ['./_base_/mask_rcnn_coco_3x.py']

# Backbone weights: the official release (ImageNet-1K, 224, split 1, 2, 7, 7;
# microsoft/CSWin-Transformer README).
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
model = dict(
    backbone=dict(
        _delete_=True,
        type='CSWin',
        arch='base',
        drop_path_rate=0.5,  # not published; our choice
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/microsoft/CSWin-Transformer/releases/download/v0.1.0/cswin_base_224.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
