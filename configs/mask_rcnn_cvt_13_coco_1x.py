# Mask R-CNN + FPN + CvT-13 on COCO, 1x: 12 epochs (lr x0.1 after 8 and 11), single-scale (1333, 800);
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05.
# Published box AP / mask AP: none published.
# Train: tools/dist_train.sh configs/mask_rcnn_cvt_13_coco_1x.py 8
_base_ = ['./_base_/mask_rcnn_coco_1x.py']

# CvT's weights have no direct link: download the ImageNet-1K file (e.g. CvT-13-224x224-IN-1k.pth) from the
# official model zoo folder, https://1drv.ms/u/s!AhIXJn_J-blW9RzF3rMW7SsLHa8h?e=blQ0Al (microsoft/CvT README),
# and put it at the path below or pass --cfg-options model.backbone.init_cfg.checkpoint=PATH.
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
model = dict(
    backbone=dict(
        _delete_=True,
        type='CvT',
        arch='13',
        # None: the official per-stage rates (0, 0, 0.1; the extra stride-32 stage 0.1);
        # no dense recipe is published for CvT.
        drop_path_rate=None,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='pretrained/CvT-13-224x224-IN-1k.pth')),
    neck=dict(in_channels=[64, 192, 384, 384]))
