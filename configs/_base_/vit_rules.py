# vit_common.py without custom_imports: the hooks and the parameter-wise rules every config here
# shares. A recipe base that inherits an mm config next to it inherits this file instead (mmengine
# refuses a key that two bases of one file both define, and mm's own configs may set
# custom_imports, e.g. mmseg's Mask2Former: 'mmdet.models'); it then sets custom_imports itself.
#
# --resume continues with the interrupted run's torch random state (drop path, dropout); the
# optimizer's parameter groups as plain dicts, so that `compile=True` can trace its step.
custom_hooks = [dict(type='RandomStateHook'), dict(type='PlainParamGroupsHook')]

# The package's one list of parameters without weight decay (the papers' AdamW rules): norms,
# relative position bias tables, absolute position embeddings and cls tokens. Keys match as
# substrings of parameter names; norm layers whose names lack "norm" (a stem LayerNorm inside a
# Sequential, BatchNorms) are caught by norm_decay_mult. Used as
# paramwise_cfg={{_base_.vit_paramwise_cfg}}; ViTLayerDecayOptimWrapperConstructor reads the same
# custom_keys (a config switching to it keeps them: paramwise_cfg=dict(layer_decay_rate=0.9)).
vit_paramwise_cfg = dict(
    norm_decay_mult=0.,
    custom_keys={
        key: dict(decay_mult=0.)
        for key in ('norm', 'relative_position_bias_table', 'absolute_pos_embed', 'pos_embed',
                    'cls_token')
    })
