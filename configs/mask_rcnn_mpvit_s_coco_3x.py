# Mask R-CNN + FPN + MPViT-S on COCO, 3x: 36 epochs (lr x0.1 after 27 and 33), multi-scale 480-800 + random crop;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP (SPEC): 48.4 / 43.9.
# Train: tools/dist_train.sh configs/mask_rcnn_mpvit_s_coco_3x.py 8
_base_ = ['./_base_/mask_rcnn_coco_3x.py']

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
    neck=dict(in_channels=[128, 216, 288, 288]))
