# COCO, 1x schedule, without the model (the recipe shared by the Mask R-CNN, Cascade Mask R-CNN
# and RetinaNet bases: mask_rcnn_coco_1x.py, coco_3x.py, retinanet_coco_1x.py, ...): the data of
# datasets/coco_instance.py, the schedule of schedules/adamw_1x.py, mmdet's runtime, and
# vit_common.py.
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
# Leaf configs add a backbone base (configs/_base_/backbones/) and pass its `backbone` and
# `backbone_channels` to the model.
_base_ = [
    './datasets/coco_instance.py',
    './schedules/adamw_1x.py',
    'mmdet::_base_/default_runtime.py',  # default_scope = 'mmdet'
    './vit_common.py',
]
# The COCO dataset class that logs the images filter_cfg leaves out.
custom_imports = dict(imports=['mmvit_plugin', 'mmvit_plugin.datasets'], allow_failed_imports=False)

num_gpus = 8  # documentation of the recipe: total batch = num_gpus x train_dataloader.batch_size
optim_wrapper = dict(paramwise_cfg=_base_.vit_paramwise_cfg)

# The backbone starts from the official ImageNet weights named in its backbone base's
# init_cfg; `load_from` takes a whole-model checkpoint instead.
load_from = None
