# COCO, 3x schedule with multi-scale + random-crop training, without the model (a base of
# mask_rcnn_coco_3x.py and cascade_mask_rcnn_coco_3x.py): as coco_1x.py, plus 36 epochs, lr x0.1
# after epochs 27 and 33, and the DETR-style augmentation of detr_aug.py.
_base_ = ['./coco_1x.py', './detr_aug.py']

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    {{_base_.detr_multi_scale_crop}},
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
