# UperNet + CSWin-T on ADE20K: 160k iterations, crop 512x512, 16 images per iteration
# (8 GPUs x 2 images), AdamW lr 6e-5 / wd 0.01, warm-up 1500 iterations then poly (power 1).
# Published mIoU (SPEC): 49.3 single-scale / 50.7 multi-scale + flip.
# Train: tools/dist_train.sh configs/upernet_cswin_t_ade20k.py 8
_base_ = ['./_base_/upernet_ade20k_160k.py']

# Backbone weights to start from: the official ImageNet release, e.g. 'pretrained/cswin_tiny_224.pth' ({'state_dict': ..., 'state_dict_ema': ...}).
# None trains from scratch (the config builds without any file).
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='CSWin',
        arch='tiny',
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else None),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
