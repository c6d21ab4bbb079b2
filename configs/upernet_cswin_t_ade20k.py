# UperNet + CSWin-T on ADE20K: 160k iterations, crop 512x512, 16 images per iteration
# (8 GPUs x 2 images), AdamW lr 6e-5 / wd 0.01, warm-up 1500 iterations then poly (power 1);
# test: 'whole' mode at (2048, 512); --tta: multi-scale 0.5-1.75 + flip.
# Published mIoU: 49.3 / 50.7; 60M params, 959G FLOPs (microsoft/CSWin-Transformer README).
# Train: tools/dist_train.sh configs/upernet_cswin_t_ade20k.py 8
_base_ = ['./_base_/upernet_ade20k_160k.py']

# Backbone weights: the official release (ImageNet-1K, 224, split 1, 2, 7, 7;
# microsoft/CSWin-Transformer README).
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
model = dict(
    backbone=dict(
        _delete_=True,
        type='CSWin',
        arch='tiny',
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/microsoft/CSWin-Transformer/releases/download/v0.1.0/cswin_tiny_224.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
