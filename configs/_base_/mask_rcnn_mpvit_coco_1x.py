# Mask R-CNN + FPN on COCO, 1x, with MPViT's Detectron2 recipe (shared by every
# configs/mask_rcnn_mpvit_*_coco_1x.py): mask_rcnn_coco_1x.py with the differences of
# mpvit_detectron2.py (gradient clipping, warm-up from 0.01, images without annotations kept).
_base_ = ['./mask_rcnn_coco_1x.py', './mpvit_detectron2.py']

optim_wrapper = dict(clip_grad={{_base_.mpvit_clip_grad}})
param_scheduler = [
    {{_base_.mpvit_warmup}},
    dict(type='MultiStepLR', begin=0, end={{_base_.max_epochs}}, by_epoch=True,
         milestones=[8, 11], gamma=0.1),
]
train_dataloader = dict(dataset=dict(filter_cfg={{_base_.mpvit_filter_cfg}}))
