# Mask2Former on COCO instance segmentation, 50 epochs with large-scale jittering (the recipe of
# every configs/mask2former_*_coco_instance.py): mmdet's own recipe, inherited
# (mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py: the head, its pixel decoder, losses and
# matcher, the data, the schedule and the optimizer), its ResNet-50 replaced by the leaf's
# backbone, with the hooks and optimizer rules of query_heads.py.
#
# Recipe (mmdet 3.x; its Swin configs differ from the ResNet-50 one in the backbone and its
# parameter-wise rules only): 16 images per iteration = 8 GPUs x 2 images
# (train_dataloader.batch_size is per GPU); AdamW lr 1e-4, weight decay 0.05, eps 1e-8, gradient
# clipping at an L2 norm of 0.01, the backbone at 0.1 x lr, no decay on the queries, level
# embeddings, norms and the package's no-decay names; 368,750 iterations (50 epochs), lr x0.1
# after 327,778 and 355,092, no warm-up; 100 queries, 9 decoder layers, a 6-layer
# deformable-attention pixel decoder; training images resized by 0.1..2.0 around 1024 and
# cropped / padded to 1024x1024; test at (1333, 800); box and mask AP from the predicted masks.
# The training set is ReportingCocoDataset (mmdet's CocoDataset logging the images filter_cfg
# leaves out). Leaf configs add a backbone base (configs/_base_/backbones/) and pass its `backbone`
# and `backbone_channels` to the model (a base cannot read a sibling base's variables).
_base_ = [
    'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',  # default_scope = 'mmdet'
    './query_heads.py',
]
custom_imports = dict(imports=['mmvit_plugin', 'mmvit_plugin.datasets'], allow_failed_imports=False)

num_gpus = 8  # documentation of the recipe: total batch = num_gpus x train_dataloader.batch_size
model = dict(backbone=dict(_delete_=True))  # mmdet's ResNet-50: replaced by the leaf's
train_dataloader = dict(dataset=dict(type='ReportingCocoDataset'))
optim_wrapper = dict(constructor='ViTLayerDecayOptimWrapperConstructor',
                     paramwise_cfg=_base_.query_head_paramwise_cfg)

# The backbone starts from the official ImageNet weights named in its backbone base's
# init_cfg; `load_from` takes a whole-model (Mask2Former) checkpoint instead.
load_from = None
