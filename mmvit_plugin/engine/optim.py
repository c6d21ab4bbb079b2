"""Layer-wise learning-rate decay for the backbones of this package."""
from typing import Any, Dict, List, Sequence, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

#: Parameters whose names contain one of these get no weight decay (besides every 1-D parameter:
#: norm weights and biases), as in the official recipes.
DEFAULT_NO_DECAY_KEYS = ('relative_position_bias_table', 'absolute_pos_embed', 'pos_embed',
                         'cls_token')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViTLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Scales each backbone parameter's lr by ``layer_decay_rate ** (num_depths - 1 - depth)``.

    The depth comes from the backbone's ``get_layer_depth`` (all four backbones have it); necks and
    heads keep the full lr. Weight decay is 0 for 1-D parameters (norms, biases) and for names
    containing a ``no_decay_keys`` entry; the rest gets the optimizer's weight decay. Parameters
    with equal lr and weight decay share one group.

    ``paramwise_cfg`` keys:
        layer_decay_rate (float): decay per depth step, e.g. 0.9. Required.
        no_decay_keys (sequence of str): default :data:`DEFAULT_NO_DECAY_KEYS`.

    Example::

        optim_wrapper = dict(
            constructor='ViTLayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            paramwise_cfg=dict(layer_decay_rate=0.9))
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        if 'layer_decay_rate' not in paramwise_cfg:
            raise ValueError('ViTLayerDecayOptimWrapperConstructor needs '
                             'paramwise_cfg=dict(layer_decay_rate=...)')
        rate = paramwise_cfg['layer_decay_rate']
        if not 0 < rate <= 1:
            raise ValueError(f'layer_decay_rate must be in (0, 1], got {rate}')
        self.layer_decay_rate = float(rate)
        self.no_decay_keys: Sequence[str] = tuple(
            paramwise_cfg.pop('no_decay_keys', DEFAULT_NO_DECAY_KEYS))
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def _check_paramwise_cfg(self, *args: Any, **kwargs: Any) -> None:
        """Our keys are not the default constructor's; they are checked in ``__init__``."""

    def add_params(self, params: List[Dict], module: nn.Module, prefix: str = '', **kwargs: Any) -> None:
        backbone = getattr(module, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'get_layer_depth'):
            raise TypeError(f'{type(module).__name__} has no backbone with get_layer_depth(); '
                            'layer-wise lr decay needs one of the mmvit_plugin backbones')
        groups: Dict[Tuple[float, float], Dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            scale = 1.0
            if name.startswith('backbone.'):
                depth, num_depths = backbone.get_layer_depth(name[len('backbone.'):])
                scale = self.layer_decay_rate**(num_depths - 1 - depth)
            no_decay = param.ndim == 1 or any(key in name for key in self.no_decay_keys)
            decay = 0.0 if no_decay else self.base_wd or 0.0
            group = groups.setdefault((scale, decay), {
                'params': [], 'lr': self.base_lr * scale, 'weight_decay': decay,
                'lr_scale': scale, 'param_names': []})
            group['params'].append(param)
            group['param_names'].append(name)
        params.extend(groups.values())
        print_log(f'layer-wise lr decay {self.layer_decay_rate}: {len(groups)} parameter groups',
                  logger='current')
