# Toy-scale Mask R-CNN + FPN + CSWin on the toy COCO set (tools/make_toy_data.py --kind coco): a
# few minutes on 2 CPU cores. Inherits the real 1x recipe and overrides only what the toy scale
# needs: data root and classes, 128-pixel images, a small CSWin (same code, fewer/narrower
# blocks), narrow FPN/heads and fewer sampled RoIs, a short schedule with a larger learning rate
# (no ImageNet weights: init_cfg.checkpoint=None), single-process data loading.
#
#   python tools/make_toy_data.py --kind coco --out data/toy_coco
#   python tools/train.py configs/toy/mask_rcnn_cswin_toy.py --work-dir work_dirs/toy_det
_base_ = ['../mask_rcnn_cswin_t_coco_1x.py']


data_root = 'data/toy_coco/'
classes = ('disc', 'square', 'triangle', 'star')
palette = [(220, 60, 60), (60, 180, 75), (65, 105, 225), (240, 200, 40)]
metainfo = dict(classes=classes, palette=palette)
image_scale = (128, 128)
toy_epochs = 12
width = 64  # FPN / head channels

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 8)),
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint=None)),  # from scratch: no weights exist for this small arch
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(in_channels=width, fc_out_channels=256, num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(in_channels=width, conv_out_channels=width, num_classes=len(classes))),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=30)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=True,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=4e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=toy_epochs, by_epoch=True, milestones=[9], gamma=0.1),
]
train_cfg = dict(max_epochs=toy_epochs, val_interval=toy_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=toy_epochs, max_keep_ckpts=1))
# Seeded, and deterministic algorithms where PyTorch has a choice: one machine repeats its figures
# exactly; another CPU (other vector kernels, thread count) sums in another order, so its figures
# differ a little (README gives the measured spread).
randomness = dict(seed=0, deterministic=True)
