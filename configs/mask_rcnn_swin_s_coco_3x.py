# Mask R-CNN + FPN + Swin-S on COCO, 3x: 36 epochs (lr x0.1 after 27 and 33), multi-scale 480-800 + random crop;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP (SPEC): none in SPEC.
# Train: tools/dist_train.sh configs/mask_rcnn_swin_s_coco_3x.py 8
_base_ = ['./_base_/mask_rcnn_coco_3x.py']

# Backbone weights to start from: the official ImageNet release, e.g. 'pretrained/swin_small_patch4_window7_224.pth' ({'model': ...}).
# None trains from scratch (the config builds without any file).
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='Swin',
        arch='small',
        drop_path_rate=0.2,  # not given in SPEC; our choice
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else None),
    neck=dict(in_channels=[96, 192, 384, 768]))
