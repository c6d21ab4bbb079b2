# UperNet + CSWin-B (ImageNet-22K weights) on ADE20K: 160k iterations, crop 640x640, 16 images
# per iteration (8 GPUs x 2 images), AdamW lr 6e-5 / wd 0.01, warm-up 1500 iterations then poly;
# test: 'whole' mode at (2560, 640); --tta: multi-scale 0.5-1.75 + flip. No official config of
# this result was released: the 512 recipe at crop 640 (the papers' description).
# Published mIoU: 51.8 / 52.6; 109M params, 1941G FLOPs (microsoft/CSWin-Transformer README).
# Train: tools/dist_train.sh configs/upernet_cswin_b_in22k_ade20k_640.py 8
_base_ = ['./_base_/upernet_ade20k_640_160k.py']

# No ImageNet-22K CSWin-B file was released (the README lists ImageNet-22K weights for
# CSWin-L only; microsoft/CSWin-Transformer issue #26 asks for them, open), so this config
# takes a local path: put an ImageNet-22K CSWin-B file (split 12, as the released 384
# weights) there or pass --cfg-options model.backbone.init_cfg.checkpoint=PATH.
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
model = dict(
    backbone=dict(
        _delete_=True,
        type='CSWin',
        arch='base',
        split_size=(1, 2, 12, 12),  # the stripes of the 384 weights
        drop_path_rate=0.6,  # not published; our choice
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='pretrained/cswin_base_22k_384.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
