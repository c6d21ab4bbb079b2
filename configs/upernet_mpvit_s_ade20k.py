# UperNet + MPViT-S on ADE20K: 160k iterations, crop 512x512, 16 images per iteration
# (8 GPUs x 2 images), AdamW lr 6e-5 / wd 0.01, warm-up 1500 iterations then poly (power 1).
# Published mIoU (SPEC): 48.3 single-scale.
# Train: tools/dist_train.sh configs/upernet_mpvit_s_ade20k.py 8
_base_ = ['./_base_/upernet_ade20k_160k.py']

# Backbone weights to start from: the official ImageNet release, e.g. 'pretrained/mpvit_small.pth' ({'model': ...}).
# None trains from scratch (the config builds without any file).
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='MPViT',
        arch='small',
        drop_path_rate=0.2,
        norm_cfg=dict(type='SyncBN', requires_grad=True),  # BN statistics over all GPUs
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else None),
    decode_head=dict(in_channels=[128, 216, 288, 288]),
    auxiliary_head=dict(in_channels=288))
