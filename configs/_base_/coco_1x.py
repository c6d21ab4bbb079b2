# COCO, 1x schedule, without the model: the recipe shared by the Mask R-CNN, Cascade Mask R-CNN
# and RetinaNet bases (mask_rcnn_coco_1x.py, coco_3x.py, retinanet_coco_1x.py, ...).
#
# Recipe (the official Swin-Transformer-Object-Detection configs; CSWin and MPViT follow them):
# 16 images per iteration = 8 GPUs x 2 images (train_dataloader.batch_size is per GPU); AdamW
# lr 1e-4, betas (0.9, 0.999), weight decay 0.05, no decay on norms, relative position bias
# tables, absolute position embeddings and cls tokens; 12 epochs, lr x0.1 after epochs 8 and 11,
# linear warm-up over the first 1000 iterations; single-scale training at (1333, 800), test at
# (1333, 800).
# Test-time augmentation: mmdet 3.3's DetTTAModel merges boxes only, so the instance segmentation
# configs have none (the papers report single-scale COCO results); the RetinaNet configs carry
# mmdet's (configs/retinanet/retinanet_tta.py).
_base_ = [
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',  # default_scope = 'mmdet'
    './vit_common.py',
]
# The COCO dataset class that logs the images filter_cfg leaves out.
custom_imports = dict(imports=['mmvit_plugin', 'mmvit_plugin.datasets'], allow_failed_imports=False)

num_gpus = 8  # documentation of the recipe: total batch = num_gpus x train_dataloader.batch_size

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg={{_base_.vit_paramwise_cfg}})
max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1),
]
train_dataloader = dict(
    batch_size=2,  # per GPU; x 8 GPUs = 16 images per iteration
    # mmdet's CocoDataset, logging the images that filter_cfg (no annotations, too small) leaves out
    dataset=dict(type='ReportingCocoDataset'))
# The learning rate above is for 16 images; `tools/train.py --auto-scale-lr` rescales it linearly
# to the run's total batch (GPUs x batch_size).
auto_scale_lr = dict(enable=False, base_batch_size=16)

# The backbone starts from the official ImageNet weights named in each leaf config's
# model.backbone.init_cfg; `load_from` takes a whole-model checkpoint instead.
load_from = None
