# Mask R-CNN + FPN + CSWin-T on COCO, 1x: 12 epochs (lr x0.1 after 8 and 11), single-scale (1333, 800);
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP (SPEC): 46.7 / 42.2.
# Train: tools/dist_train.sh configs/mask_rcnn_cswin_t_coco_1x.py 8
_base_ = ['./_base_/mask_rcnn_coco_1x.py']

# Backbone weights to start from: the official ImageNet release, e.g. 'pretrained/cswin_tiny_224.pth' ({'state_dict': ..., 'state_dict_ema': ...}).
# None trains from scratch (the config builds without any file).
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='CSWin',
        arch='tiny',
        drop_path_rate=0.2,  # not given in SPEC; our choice
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else None),
    neck=dict(in_channels=[64, 128, 256, 512]))
