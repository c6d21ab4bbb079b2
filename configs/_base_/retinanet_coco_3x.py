# RetinaNet + FPN on COCO, 3x with multi-scale + random-crop training (shared by every
# configs/retinanet_*_coco_3x.py): as retinanet_coco_1x.py with the DETR-style augmentation of
# detr_aug.py (MPViT's "MS" setting) and MPViT's 3x schedule (mpvit_detectron2.py): 36 epochs,
# steps after 28 and 33.
_base_ = ['./retinanet_coco_1x.py', './detr_aug.py']

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    {{_base_.detr_multi_scale_crop}},
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    {{_base_.mpvit_warmup}},
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones={{_base_.mpvit_milestones_3x}}, gamma=0.1),
]
