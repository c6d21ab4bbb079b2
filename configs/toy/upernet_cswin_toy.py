# Toy-scale UperNet + CSWin on the toy ADE20K set (tools/make_toy_data.py --kind ade): a few
# minutes on 2 CPU cores. Inherits the real recipe and overrides only what the toy scale needs:
# data root and classes, crop 128, a small CSWin (same code, fewer/narrower blocks), narrow heads,
# BN instead of SyncBN (single CPU process), a short schedule with a larger learning rate (no
# ImageNet weights: init_cfg.checkpoint=None), single-process data loading, and the multi-scale +
# flip test (--tta) at the toy scale.
#
#   python tools/make_toy_data.py --kind ade --out data/toy_ade
#   python tools/train.py configs/toy/upernet_cswin_toy.py --work-dir work_dirs/toy_seg
_base_ = ['../upernet_cswin_t_ade20k.py']


data_root = 'data/toy_ade'
classes = ('background', 'disc', 'square', 'triangle', 'star')
palette = [[120, 120, 120], [220, 60, 60], [60, 180, 75], [65, 105, 225], [240, 200, 40]]
crop_size = (128, 128)
toy_iters = 600
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 8)),
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint=None)),  # from scratch: no weights exist for this small arch
    decode_head=dict(in_channels=[32, 64, 128, 256], channels=64, num_classes=len(classes),
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=128, channels=32, num_classes=len(classes), norm_cfg=norm_cfg))

# Labels as written by make_toy_data: 0 unlabelled (ignored), 1..5 the classes above. The plain
# BaseSegDataset reads the ADE20K layout; ADE20KDataset itself only accepts subsets of its 150
# class names.
toy_dataset = dict(type='BaseSegDataset', data_root=data_root, img_suffix='.jpg',
               seg_map_suffix='.png', reduce_zero_label=True,
               metainfo=dict(classes=classes, palette=palette))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# The published protocol (ratios 0.5..1.75 of the test scale, and flips) at the toy test scale:
# the tta_pipeline of configs/_base_/datasets/ade20k.py, its Resize steps at 128.
tta_pipeline = _base_.tta_pipeline
tta_pipeline[1].transforms[0] = [
    dict(type='Resize', scale=(int(128 * r), int(128 * r)), keep_ratio=True)
    for r in _base_.tta_ratios
]
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    dataset=dict(toy_dataset, data_prefix=dict(img_path='images/training',
                                           seg_map_path='annotations/training'),
                 pipeline=train_pipeline, _delete_=True))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(toy_dataset, data_prefix=dict(img_path='images/validation',
                                           seg_map_path='annotations/validation'),
                 pipeline=test_pipeline, _delete_=True))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=50, end=toy_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=toy_iters, val_interval=toy_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=toy_iters, max_keep_ckpts=1))
# Seeded, and deterministic algorithms where PyTorch has a choice: one machine repeats its figures
# exactly; another CPU (other vector kernels, thread count) sums in another order, so its figures
# differ a little (README gives the measured spread).
randomness = dict(seed=0, deterministic=True)
