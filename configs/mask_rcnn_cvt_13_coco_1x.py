# Mask R-CNN + FPN + CvT-13 on COCO, 1x: 12 epochs (lr x0.1 after 8 and 11), single-scale (1333, 800);
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP (SPEC): none published.
# Train: tools/dist_train.sh configs/mask_rcnn_cvt_13_coco_1x.py 8
_base_ = ['./_base_/mask_rcnn_coco_1x.py']

# Backbone weights to start from: the official ImageNet release, e.g. 'pretrained/CvT-13-224x224-IN-1k.pth' (a flat state dict).
# None trains from scratch (the config builds without any file).
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='CvT',
        arch='13',
        # None: the official per-stage rates (0, 0, 0.1; the extra stride-32 stage 0.1);
        # no dense recipe is published for CvT.
        drop_path_rate=None,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else None),
    neck=dict(in_channels=[64, 192, 384, 384]))
