# UperNet + MPViT-S on ADE20K: 160k iterations, crop 512x512, 16 images per iteration
# (8 GPUs x 2 images), AdamW lr 6e-5 / wd 0.01, warm-up 1500 iterations then poly (power 1);
# test: 'whole' mode at (2048, 512); --tta: multi-scale 0.5-1.75 + flip.
# Published mIoU: 48.3 single-scale; 52M params, 943G FLOPs (youngwanLEE/MPViT README).
# Train: tools/dist_train.sh configs/upernet_mpvit_s_ade20k.py 8
_base_ = ['./_base_/upernet_ade20k_160k.py']

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
        arch='small',
        drop_path_rate=0.2,
        norm_cfg=dict(type='SyncBN', requires_grad=True),  # BN statistics over all GPUs
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://dl.dropbox.com/s/y3dnmmy8h4npz7a/mpvit_small.pth')),
    decode_head=dict(in_channels=[128, 216, 288, 288]),
    auxiliary_head=dict(in_channels=288))
