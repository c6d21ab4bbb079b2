# UperNet + CSWin-B on ADE20K: 160k iterations, crop 512x512, 16 images per iteration
# (8 GPUs x 2 images), AdamW lr 6e-5 / wd 0.01, warm-up 1500 iterations then poly (power 1).
# Published mIoU (SPEC): 51.1 single-scale / 52.2 multi-scale + flip.
# Train: tools/dist_train.sh configs/upernet_cswin_b_ade20k.py 8
_base_ = ['./_base_/upernet_ade20k_160k.py']

# Backbone weights to start from: the official ImageNet release, e.g. 'pretrained/cswin_base_224.pth' ({'state_dict': ..., 'state_dict_ema': ...}).
# None trains from scratch (the config builds without any file).
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='CSWin',
        arch='base',
        drop_path_rate=0.6,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else None),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
