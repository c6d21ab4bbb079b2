# UperNet on ADE20K, 160k iterations, crop 512 (the recipe of every configs/upernet_*_ade20k.py):
# the model of models/upernet.py, the data of datasets/ade20k.py, the schedule of
# schedules/adamw_160k.py, mmseg's runtime, and vit_common.py.
#
# Recipe (the official configs of Swin-Transformer-Semantic-Segmentation, CSWin-Transformer
# segmentation/ and MPViT semantic_segmentation/, all mmseg 0.x):
#   16 images per iteration = 8 GPUs x 2 images (train_dataloader.batch_size is per GPU);
#   AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01, no decay on norms, relative position
#   bias tables, absolute position embeddings and cls tokens; linear warm-up over 1500 iterations,
#   then poly decay (power 1) to 0 at 160k; UperHead with 512 channels, auxiliary FCN head on
#   level 3 (in_index 2) with loss weight 0.4, SyncBN in the heads.
# Evaluation: 'whole' mode (one forward of the whole image) on images resized to (2048, 512)
#   keeping the ratio, as every official UperNet recipe here (none used sliding windows; for them:
#   --cfg-options model.test_cfg.mode=slide "model.test_cfg.crop_size=(512,512)"
#   "model.test_cfg.stride=(341,341)"). `tools/test.py --tta` runs the published multi-scale +
#   flip protocol (datasets/ade20k.py's tta_pipeline, mmseg's SegTTAModel averaging the softmax).
# Leaf configs add a backbone base (configs/_base_/backbones/) and pass its `backbone` and
# `backbone_channels` to the model. Drop path: the backbone bases carry their COCO recipes' value;
# where the official ADE20K recipe differs (Swin-T, Swin-S, CSWin-T, CSWin-B), the UperNet leaf
# sets it.
_base_ = [
    './models/upernet.py',
    './datasets/ade20k.py',
    './schedules/adamw_160k.py',
    'mmseg::_base_/default_runtime.py',  # default_scope = 'mmseg', tta_model = SegTTAModel
    './vit_common.py',
]

num_gpus = 8  # documentation of the recipe: total batch = num_gpus x train_dataloader.batch_size
model = dict(data_preprocessor=dict(size=_base_.crop_size))
optim_wrapper = dict(paramwise_cfg=_base_.vit_paramwise_cfg)

# The backbone starts from the official ImageNet weights named in its backbone base's
# init_cfg; `load_from` takes a whole-model (UperNet) checkpoint instead.
load_from = None
