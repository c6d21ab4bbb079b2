# Mask2Former on ADE20K, 160k iterations, crop 512 (the recipe of every
# configs/mask2former_*_ade20k.py): mmseg's own recipe, inherited
# (mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py: the head, its pixel decoder,
# losses and matcher, the data, the schedule and the optimizer), its ResNet-50 replaced by the
# leaf's backbone, with the hooks and optimizer rules of query_heads.py.
#
# Recipe (mmseg 1.x; its Swin configs differ from the ResNet-50 one in the backbone and its
# parameter-wise rules only): 16 images per iteration = 8 GPUs x 2 images
# (train_dataloader.batch_size is per GPU); AdamW lr 1e-4, weight decay 0.05, eps 1e-8, gradient
# clipping at an L2 norm of 0.01, the backbone at 0.1 x lr, no decay on the queries, level
# embeddings, norms and the package's no-decay names; poly decay (power 0.9) over 160k
# iterations, no warm-up; 100 queries, 9 decoder layers, a 6-layer deformable-attention pixel
# decoder on levels 1..3 (strides 8..32) plus level 0 for the mask features; training images
# resized to a short side of 256..1024 (max 2048) and cropped to 512; test images resized to
# (2048, 512) keeping the ratio, 'whole' mode; validation and checkpoints every 5k iterations.
# Leaf configs add a backbone base (configs/_base_/backbones/) and pass its `backbone` and
# `backbone_channels` to the model (a base cannot read a sibling base's variables).
_base_ = [
    'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py',  # default_scope = 'mmseg'
    './query_heads.py',
]
# mmdet's models (the head's pixel decoder, losses, matcher), as mmseg's recipe imports them.
custom_imports = dict(imports=['mmdet.models', 'mmvit_plugin'], allow_failed_imports=False)

num_gpus = 8  # documentation of the recipe: total batch = num_gpus x train_dataloader.batch_size
model = dict(backbone=dict(_delete_=True))  # mmseg's ResNet-50: replaced by the leaf's
optim_wrapper = dict(constructor='ViTLayerDecayOptimWrapperConstructor',
                     paramwise_cfg=_base_.query_head_paramwise_cfg)

# The backbone starts from the official ImageNet weights named in its backbone base's
# init_cfg; `load_from` takes a whole-model (Mask2Former) checkpoint instead.
load_from = None
