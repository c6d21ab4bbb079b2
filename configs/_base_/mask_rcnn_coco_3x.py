# Mask R-CNN + FPN on COCO, 3x schedule with multi-scale + random-crop training
# (shared by every configs/mask_rcnn_*_coco_3x.py).
#
# As the 1x base, plus: 36 epochs, lr x0.1 after epochs 27 and 33; training images either resized
# to a short side drawn from 480..800 (step 32, long side <= 1333), or resized to a short side of
# 400/500/600, randomly cropped to 384..600 pixels a side, then resized as before (the DETR-style
# augmentation of the Swin/CSWin/MPViT papers).
_base_ = ['./mask_rcnn_coco_1x.py']

multi_scales = [(1333, s) for s in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice',
         transforms=[
             [dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True)],
             [
                 dict(type='RandomChoiceResize', scales=[(1333, 400), (1333, 500), (1333, 600)],
                      keep_ratio=True),
                 dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                      allow_negative_crop=True),
                 dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True),
             ],
         ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1),
]
