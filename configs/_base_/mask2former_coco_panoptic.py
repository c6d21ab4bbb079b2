# Mask2Former on COCO panoptic segmentation, 50 epochs with large-scale jittering (the recipe of
# every configs/mask2former_*_coco_panoptic.py): mmdet's own recipe, inherited
# (mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py), its ResNet-50 replaced by the
# leaf's backbone, with the hooks and optimizer rules of query_heads.py.
#
# Recipe (mmdet 3.x): as mask2former_coco_instance.py (optimizer, schedule, large-scale
# jittering at 1024, 100 queries), on the 80 thing and 53 stuff classes of COCO panoptic;
# evaluated as PQ (CocoPanopticMetric) and, from the same predictions, box and mask AP.
# Leaf configs add a backbone base (configs/_base_/backbones/) and pass its `backbone` and
# `backbone_channels` to the model (a base cannot read a sibling base's variables).
_base_ = [
    'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py',  # default_scope = 'mmdet'
    './query_heads.py',
]
custom_imports = dict(imports=['mmvit_plugin'], allow_failed_imports=False)

num_gpus = 8  # documentation of the recipe: total batch = num_gpus x train_dataloader.batch_size
model = dict(backbone=dict(_delete_=True))  # mmdet's ResNet-50: replaced by the leaf's
optim_wrapper = dict(constructor='ViTLayerDecayOptimWrapperConstructor',
                     paramwise_cfg=_base_.query_head_paramwise_cfg)

# The backbone starts from the official ImageNet weights named in its backbone base's
# init_cfg; `load_from` takes a whole-model (Mask2Former) checkpoint instead.
load_from = None
