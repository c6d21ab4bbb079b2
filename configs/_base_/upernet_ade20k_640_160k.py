# UperNet on ADE20K, 160k iterations, crop 640: the recipe of the ImageNet-22K results of the Swin
# and CSWin papers (configs/upernet_*_in22k_ade20k_640.py). As upernet_ade20k_160k.py, with mmseg's
# 640 data settings (its _base_/datasets/ade20k_640x640.py): training images resized to
# (2560, 640) x 0.5..2.0 and cropped to 640, test images resized to (2560, 640) keeping the ratio,
# 'whole' mode; --tta scales (2560, 640) by 0.5..1.75, with flips.
_base_ = ['./upernet_ade20k_160k.py']

crop_size = (640, 640)
test_scale = (2560, 640)
model = dict(data_preprocessor=dict(size=crop_size))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=test_scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=test_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# The multi-scale + flip pipeline of datasets/ade20k.py, its scales from this test_scale.
tta_pipeline = _base_.tta_pipeline
tta_pipeline[1].transforms[0] = [
    dict(type='Resize', scale=(int(test_scale[0] * r), int(test_scale[1] * r)), keep_ratio=True)
    for r in _base_.tta_ratios
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
