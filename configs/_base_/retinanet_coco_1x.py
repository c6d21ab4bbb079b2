# RetinaNet + FPN on COCO, 1x (the recipe of every configs/retinanet_*_coco_1x.py): the model of
# models/retinanet.py (P3-P7, the extra levels from C5, as MPViT's
# build_retinanet_mpvit_fpn_backbone) with the recipe of coco_1x.py, boxes only, and the
# differences of MPViT's Detectron2 recipe (mpvit_detectron2.py: gradient clipping, warm-up from
# 0.01, images without annotations kept).
# `tools/test.py --tta` runs mmdet's RetinaNet TTA (3 scales x flip; not used by the paper).
_base_ = [
    './models/retinanet.py',
    './coco_1x.py',
    'mmdet::retinanet/retinanet_tta.py',  # tta_model, tta_pipeline
    './mpvit_detectron2.py',
]

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    dataset=dict(filter_cfg={{_base_.mpvit_filter_cfg}}, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator

optim_wrapper = dict(clip_grad={{_base_.mpvit_clip_grad}})
param_scheduler = [
    {{_base_.mpvit_warmup}},
    dict(type='MultiStepLR', begin=0, end={{_base_.max_epochs}}, by_epoch=True,
         milestones=[8, 11], gamma=0.1),
]
