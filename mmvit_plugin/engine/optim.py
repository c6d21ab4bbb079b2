"""Layer-wise learning-rate decay for the backbones of this package."""
from typing import Dict, List, Optional, Tuple, Union

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

#: The ``paramwise_cfg`` keys of mmengine's :class:`DefaultOptimWrapperConstructor`, all honoured.
DEFAULT_PARAMWISE_KEYS = ('custom_keys', 'bias_lr_mult', 'bias_decay_mult', 'norm_decay_mult',
                          'dwconv_decay_mult', 'flat_decay_mult', 'dcn_offset_lr_mult',
                          'bypass_duplicate')
#: Multipliers whose only purpose is a weight decay for 1-D parameters, which the layer-decay
#: convention keeps at 0: accepted only as 0.
ONE_D_DECAY_KEYS = ('bias_decay_mult', 'norm_decay_mult', 'flat_decay_mult')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViTLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default parameter-wise rules, with layer-wise lr decay on top.

    Every rule of :class:`~mmengine.optim.DefaultOptimWrapperConstructor` applies first
    (``custom_keys`` with ``lr_mult`` / ``decay_mult`` and any other per-group setting,
    ``bias_lr_mult``, ``dwconv_decay_mult``, ``dcn_offset_lr_mult``, ``bypass_duplicate``; frozen
    parameters are left out). Then each backbone parameter's lr is multiplied by
    ``layer_decay_rate ** (num_depths - 1 - depth)``, the depth coming from the backbone's
    ``get_layer_depth`` (all four backbones have it); necks and heads keep their lr.

    Weight decay follows the convention of BEiT and mmseg's ``LearningRateDecayOptimizerConstructor``:
    none on 1-D parameters (norm weights, biases) and on every ``*.bias``; the other parameters get
    what the default rules give them. The names that need no decay although they are not 1-D
    (relative position bias tables, position embeddings, cls tokens) come from ``custom_keys``
    with ``decay_mult=0.``: the configs inherit the package's list from
    ``configs/_base_/vit_common.py`` (``vit_paramwise_cfg``). Parameters with equal settings share
    one group; each group lists its ``param_names`` and its ``lr_scale``.

    ``paramwise_cfg`` keys:
        layer_decay_rate (float): decay per depth step, in (0, 1], e.g. 0.9. Required.
        custom_keys, bias_lr_mult, dwconv_decay_mult, dcn_offset_lr_mult, bypass_duplicate: as in
            mmengine's default constructor.
        bias_decay_mult, norm_decay_mult, flat_decay_mult: only 0 (what the convention gives
            1-D parameters anyway); another value is an error, as it cannot take effect.
        Any other key is an error.

    Example::

        optim_wrapper = dict(
            constructor='ViTLayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            paramwise_cfg=dict(layer_decay_rate=0.9,
                               custom_keys={'decode_head': dict(lr_mult=10.)}))
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        # layer_decay_rate stays in paramwise_cfg: mmengine only calls add_params when it is
        # non-empty, and its own rules ignore the key.
        paramwise_cfg = dict(paramwise_cfg or {})
        if 'layer_decay_rate' not in paramwise_cfg:
            raise ValueError('ViTLayerDecayOptimWrapperConstructor needs '
                             'paramwise_cfg=dict(layer_decay_rate=...), e.g. 0.9')
        rate = paramwise_cfg['layer_decay_rate']
        if not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError(f'paramwise_cfg.layer_decay_rate must be a number in (0, 1], got {rate!r}')
        unknown = sorted(set(paramwise_cfg) - set(DEFAULT_PARAMWISE_KEYS) - {'layer_decay_rate'})
        if unknown:
            raise ValueError(
                f'ViTLayerDecayOptimWrapperConstructor: unknown paramwise_cfg key(s) {unknown}; '
                f'it takes layer_decay_rate and the keys of mmengine\'s default constructor: '
                f'{", ".join(DEFAULT_PARAMWISE_KEYS)}')
        nonzero = [f'{k}={paramwise_cfg[k]}' for k in ONE_D_DECAY_KEYS
                   if paramwise_cfg.get(k) not in (None, 0)]
        if nonzero:
            raise ValueError(
                f'ViTLayerDecayOptimWrapperConstructor: {", ".join(nonzero)} cannot take effect: '
                'under layer-wise lr decay 1-D parameters and biases get no weight decay (the '
                'BEiT convention); remove the key or set it to 0')
        self.layer_decay_rate = float(rate)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        if self.base_lr is None:
            raise ValueError('ViTLayerDecayOptimWrapperConstructor needs optimizer.lr')

    def add_params(self, params: List[Dict], module: nn.Module, prefix: str = '',
                   is_dcn_module: Optional[Union[int, float]] = None) -> None:
        if prefix:  # mmengine's recursion into the submodules: its rules only
            super().add_params(params, module, prefix, is_dcn_module)
            return
        backbone = getattr(module, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'get_layer_depth'):
            raise TypeError(f'{type(module).__name__} has no backbone with get_layer_depth(); '
                            'layer-wise lr decay needs one of the mmvit_plugin backbones')
        per_param: List[Dict] = []
        super().add_params(per_param, module, prefix, is_dcn_module)  # one group per parameter
        names = {id(p): n for n, p in module.named_parameters()}
        merged: Dict[Tuple, Dict] = {}
        overridden = set()
        for group in per_param:
            (param, ) = group['params']
            name = names[id(param)]
            scale = 1.0
            if name.startswith('backbone.'):
                depth, num_depths = backbone.get_layer_depth(name[len('backbone.'):])
                scale = self.layer_decay_rate**(num_depths - 1 - depth)
            settings = {k: v for k, v in group.items() if k != 'params'}
            settings['lr'] = settings.get('lr', self.base_lr) * scale
            if param.ndim == 1 or name.endswith('.bias'):
                if settings.get('decay_mult', 0) != 0:
                    overridden.add(name)
                settings['weight_decay'] = 0.0
            elif self.base_wd is not None:
                settings.setdefault('weight_decay', self.base_wd)
            settings['lr_scale'] = scale
            target = merged.setdefault(repr(sorted(settings.items())),
                                       dict(settings, params=[], param_names=[]))
            target['params'].append(param)
            target['param_names'].append(name)
        params.extend(merged.values())
        print_log(f'layer-wise lr decay {self.layer_decay_rate}: {len(per_param)} parameters in '
                  f'{len(merged)} groups', logger='current')
        if overridden:
            print_log(f'layer-wise lr decay: custom_keys set a decay_mult for {len(overridden)} '
                      f'1-D parameters or biases (e.g. {sorted(overridden)[0]}); they get no weight '
                      'decay (BEiT convention)', logger='current', level=30)

