# What the Mask2Former and DINO recipe bases share (mask2former_ade20k_160k.py,
# mask2former_coco_instance.py, mask2former_coco_panoptic.py, dino_coco_12e.py): the hooks and
# no-decay names of vit_rules.py, and the optimizer's parameter-wise rules as variables; each base
# inherits mmseg's / mmdet's own recipe beside this file and puts them in place.
#
# Optimizer: mm's paramwise rules stay as its recipe has them (inherited: custom_keys 'backbone'
# lr_mult 0.1; Mask2Former's query_embed / query_feat / level_embed with decay_mult 0,
# norm_decay_mult 0), built by ViTLayerDecayOptimWrapperConstructor at layer_decay_rate 1.0 (no
# layer-wise decay). Its rule that 1-D parameters and biases get no weight decay is what gives
# the backbone's norms none, as mm's Swin Mask2Former recipes do by listing every norm of their
# Swin; under mmengine's default constructor the 'backbone' key would win over 'norm' (the
# longest key contained in a name applies, and only it). Where this differs from mm's rules:
# Mask2Former's head biases get no weight decay either; DINO (whose recipe decays every
# parameter at 1e-4) leaves norms, biases and the package's no-decay names undecayed.
# Layer-wise lr decay on top: optim_wrapper.paramwise_cfg.layer_decay_rate=0.9 (e.g. with
# --cfg-options); mm's default constructor instead (the backbone's norms then decay):
# optim_wrapper.constructor=DefaultOptimWrapperConstructor.
_base_ = ['./vit_rules.py']

# The lr multiplier of mm's recipes for the backbone (their custom_keys 'backbone').
backbone_lr_mult = 0.1
# The package's no-decay names (vit_rules.py). Every key but 'norm' names backbone parameters only,
# and is longer than 'backbone', so it applies there instead of 'backbone': it carries the
# backbone's lr multiplier. 'norm' also names the heads' norms and keeps lr_mult 1 ('backbone',
# the longer key, applies to the backbone's own norms).
query_head_paramwise_cfg = dict(
    layer_decay_rate=1.0,
    custom_keys={
        key: rule if key == 'norm' else dict(rule, lr_mult=backbone_lr_mult)
        for key, rule in _base_.vit_paramwise_cfg.custom_keys.items()
    })
