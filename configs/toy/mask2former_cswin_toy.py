# Toy-scale Mask2Former + CSWin on the toy ADE20K set (tools/make_toy_data.py --kind ade; the data
# of `make demo`), for `make demo-mask2former`. Inherits the real recipe
# (mask2former_cswin_t_ade20k.py: mmseg's Mask2Former recipe with its head, pixel decoder with
# multi-scale deformable attention, losses, Hungarian matcher and optimizer) and overrides only what
# the toy scale needs, as configs/toy/upernet_cswin_toy.py does for UperNet: data root and classes,
# crop 128, the same small CSWin (from scratch: init_cfg.checkpoint=None), a narrow head (64
# channels, 20 queries, 2 pixel-decoder and 3 decoder layers, 1024 sampled points per mask), the
# backbone at the full lr (no ImageNet weights to protect), a short schedule with warm-up and a
# larger learning rate (6e-4: 59.2 % mIoU where 3e-4 gave 53.7 %), single-process data loading.
#
#   python tools/make_toy_data.py --kind ade --out data/toy_ade
#   python tools/train.py configs/toy/mask2former_cswin_toy.py --work-dir work_dirs/toy_m2f
_base_ = ['../mask2former_cswin_t_ade20k.py']

custom_imports = dict(imports=['mmvit_plugin', 'mmdet.models'], allow_failed_imports=False)

data_root = 'data/toy_ade'
classes = ('background', 'disc', 'square', 'triangle', 'star')
palette = [[120, 120, 120], [220, 60, 60], [60, 180, 75], [65, 105, 225], [240, 200, 40]]
num_classes = len(classes)
crop_size = (128, 128)
toy_iters = 800
width = 64  # pixel decoder and transformer decoder channels
heads = 4

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 8)),
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint=None)),  # from scratch: no weights exist for this small arch
    decode_head=dict(
        in_channels=[32, 64, 128, 256], feat_channels=width, out_channels=width,
        num_classes=num_classes, num_queries=20,
        pixel_decoder=dict(
            encoder=dict(
                num_layers=2,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=width, num_heads=heads),
                    ffn_cfg=dict(embed_dims=width, feedforward_channels=4 * width))),
            positional_encoding=dict(num_feats=width // 2)),
        positional_encoding=dict(num_feats=width // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=width, num_heads=heads),
                cross_attn_cfg=dict(embed_dims=width, num_heads=heads),
                ffn_cfg=dict(embed_dims=width, feedforward_channels=4 * width))),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
        train_cfg=dict(num_points=1024)))

# Labels as written by make_toy_data: 0 unlabelled (ignored), 1..5 the classes above (the same
# dataset and pipelines as configs/toy/upernet_cswin_toy.py).
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

optim_wrapper = dict(
    optimizer=dict(lr=6e-4),
    paramwise_cfg=dict(custom_keys=dict(backbone=dict(lr_mult=1.0, decay_mult=1.0))))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=50, end=toy_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=toy_iters, val_interval=toy_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=toy_iters, max_keep_ckpts=1,
                    save_best=None))
# Seeded, and deterministic algorithms where PyTorch has a choice: one machine repeats its figures
# exactly; another CPU (other vector kernels, thread count) sums in another order.
randomness = dict(seed=0, deterministic=True)
