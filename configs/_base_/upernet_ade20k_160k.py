# UperNet on ADE20K, 160k iterations, crop 512 (shared by every configs/upernet_*_ade20k.py).
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
#   flip protocol (tta_pipeline below, mmseg's SegTTAModel averaging the softmax).
# Leaf configs set the backbone (type, arch, drop path, official weights) and the head in_channels.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',  # default_scope = 'mmseg', tta_model = SegTTAModel
    'mmseg::_base_/schedules/schedule_160k.py',
    './vit_common.py',
]

crop_size = (512, 512)
test_scale = (2048, 512)
num_gpus = 8  # documentation of the recipe: total batch = num_gpus x train_dataloader.batch_size
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(channels=512, num_classes=150, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_index=2, num_classes=150, norm_cfg=norm_cfg,
                        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                         loss_weight=0.4)),
    test_cfg=dict(mode='whole'))

# Multi-scale + flip as the papers ran it (mmseg 0.x MultiScaleFlipAug, img_scale=(2048, 512),
# img_ratios 0.5..1.75, flip): each scale is test_scale x ratio, keeping the aspect ratio. (mmseg
# 1.x's own ade20k tta_pipeline scales the original image by the ratio instead, which differs
# for images that are not 512 pixels on their short side.)
tta_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='Resize', scale=(int(test_scale[0] * r), int(test_scale[1] * r)),
                   keep_ratio=True) for r in tta_ratios],
             [dict(type='RandomFlip', prob=0., direction='horizontal'),
              dict(type='RandomFlip', prob=1., direction='horizontal')],
             [dict(type='LoadAnnotations', reduce_zero_label=True)],
             [dict(type='PackSegInputs')],
         ]),
]

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg={{_base_.vit_paramwise_cfg}})
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
train_dataloader = dict(batch_size=2)  # per GPU; x 8 GPUs = 16 images per iteration
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
# The learning rate above is for 16 images; `tools/train.py --auto-scale-lr` rescales it linearly
# to the run's total batch (GPUs x batch_size).
auto_scale_lr = dict(enable=False, base_batch_size=16)

# The backbone starts from the official ImageNet weights named in each leaf config's
# model.backbone.init_cfg; `load_from` takes a whole-model (UperNet) checkpoint instead.
load_from = None
