# UperNet on ADE20K, 160k iterations, crop 512 (shared by every configs/upernet_*_ade20k.py).
#
# Recipe (SPEC "Published dense-prediction results", as in the Swin/CSWin/MPViT papers):
#   16 images per iteration = 8 GPUs x 2 images (train_dataloader.batch_size is per GPU);
#   AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01, no decay on norms, relative position
#   bias tables, absolute position embeddings and cls tokens; linear warm-up over 1500 iterations,
#   then poly decay (power 1) to 0 at 160k; UperHead with 512 channels, auxiliary FCN head on
#   level 3 (in_index 2) with loss weight 0.4, SyncBN in the heads; test in 'whole' mode on images
#   resized to (2048, 512) keeping the ratio.
# Leaf configs set the backbone (type, arch, drop path) and the head in_channels.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',  # default_scope = 'mmseg'
    'mmseg::_base_/schedules/schedule_160k.py',
    './vit_common.py',
]

crop_size = (512, 512)
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

# Official ImageNet weights for the backbone: leaf configs put them in the backbone's init_cfg
# when `pretrained` is set; `load_from` takes a whole-model (UperNet) checkpoint instead.
load_from = None
