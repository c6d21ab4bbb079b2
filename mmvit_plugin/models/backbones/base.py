"""What every pyramid backbone here shares: arch lookup, input checks, out_indices, frozen stages,
norm_eval, gradient checkpointing, and loading official checkpoints in any of their layouts."""
import functools
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import MMLogger, print_log
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from ...checkpoint import StateDict, load_backbone_state_dict
from ...engine.weight_loading import load_weights
from ..layers import Mlp

NUM_LEVELS = 4


class PyramidBackbone(BaseModule):
    """Base class of the four-level backbones (strides 4, 8, 16, 32).

    Subclasses set :attr:`arch_zoo` and :attr:`arch_keys` and, when built, :attr:`num_features`
    (the channels of the four levels), build their layers, and implement
    :meth:`stage_modules` (what ``frozen_stages`` freezes) and :meth:`convert_checkpoint` (official
    key layout to ours). The conversion also runs as a ``load_state_dict`` pre-hook, so official
    weights load through ``init_cfg``, ``load_from`` of a whole model, or ``load_state_dict`` alike.

    Args:
        in_channels: channels of the input image.
        out_indices: which levels (0..3, strides 4..32) to return.
        frozen_stages: ``-1`` freezes nothing, ``0`` the stem, ``k`` the stem and stages ``0..k-1``.
        norm_eval: keep BatchNorm layers in eval mode (running statistics frozen) while training.
        with_cp: what to recompute in the backward pass instead of storing it (non-reentrant
            checkpointing): ``False`` nothing; ``'act'`` the MLP activations (their outputs are the
            largest tensors a block keeps; little time); ``True`` whole blocks (least memory,
            about one more forward pass of time). See :attr:`with_cp`.
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=URI[, prefix=...])``
            loads an official or converted checkpoint from a path or any mmengine URI
            (``https://`` downloads once into torch's hub cache); ``checkpoint=None`` starts
            from this backbone's own init.
    """

    arch_zoo: Dict[str, Dict[str, Any]] = {}
    arch_keys: Tuple[str, ...] = ()
    num_features: List[int]
    #: Smallest input side the stem accepts.
    min_input_size: int = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's ``__init__`` ends by applying ``with_cp`` to the layers it has built
        (``'act'`` reaches every MLP). ``functools.wraps`` keeps its signature for
        ``inspect.signature`` (docs, the configs' tests)."""
        super().__init_subclass__(**kwargs)
        if '__init__' not in cls.__dict__:
            return
        build = cls.__init__

        @functools.wraps(build)
        def __init__(self: 'PyramidBackbone', *args: Any, **kwargs: Any) -> None:
            build(self, *args, **kwargs)
            self.with_cp = self.with_cp

        cls.__init__ = __init__

    def __init__(self,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: Union[bool, str] = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'{self._name}: in_channels must be a positive int, got {in_channels!r}')
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out_indices = tuple(out_indices)
        bad = [i for i in out_indices if not isinstance(i, int) or not -NUM_LEVELS <= i < NUM_LEVELS]
        if not out_indices or bad:
            raise ValueError(f'{self._name}: out_indices must be levels in 0..{NUM_LEVELS - 1}, '
                             f'got {out_indices!r}')
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= NUM_LEVELS:
            raise ValueError(f'{self._name}: frozen_stages must be an int in -1..{NUM_LEVELS}, '
                             f'got {frozen_stages!r}')
        self.in_channels = in_channels
        self.out_indices = tuple(sorted(i % NUM_LEVELS for i in out_indices))
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.register_load_state_dict_pre_hook(self._convert_on_load)

    @property
    def out_channels(self) -> List[int]:
        """Channels of the returned feature maps, in the order of :attr:`out_indices`."""
        return [self.num_features[i] for i in self.out_indices]

    @property
    def _name(self) -> str:
        return type(self).__name__

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def resolve_arch(cls, arch: Union[str, Dict[str, Any]]) -> Dict[str, Any]:
        """The arch settings for a name in :attr:`arch_zoo` or a dict with every key of
        :attr:`arch_keys`; a key given as a sequence needs one entry per stage."""
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ValueError(f'{cls.__name__}: unknown arch {arch!r}; choose one of '
                                 f'{sorted(cls.arch_zoo)} or pass a dict with keys {list(cls.arch_keys)}')
            return dict(cls.arch_zoo[key])
        if not isinstance(arch, dict):
            raise TypeError(f'{cls.__name__}: arch must be a str or a dict, got {type(arch).__name__}')
        missing = [k for k in cls.arch_keys if k not in arch]
        if missing:
            raise ValueError(f'{cls.__name__}: custom arch dict lacks {missing}; '
                             f'it needs {list(cls.arch_keys)}')
        for key in cls.arch_keys:
            value = arch[key]
            if isinstance(value, (list, tuple)) and len(value) != NUM_LEVELS:
                raise ValueError(f"{cls.__name__}: arch '{key}' needs {NUM_LEVELS} entries (one for "
                                 f'each of the {NUM_LEVELS} stages), got {value!r}')
        return dict(arch)

    def check_heads(self, widths: Sequence[int], num_heads: Sequence[int]) -> None:
        """Each stage's channels must split evenly into its heads."""
        for dims, heads in zip(widths, num_heads):
            if dims % heads:
                raise ValueError(f'{self._name}: {dims} channels do not split into {heads} heads')

    @staticmethod
    def init_module_weights(m: nn.Module) -> None:
        """The usual ViT init: truncated normal (std .02) Linear weights, zero biases, unit norms."""
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.GroupNorm, _BatchNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # --- subclass hooks -------------------------------------------------------------------------
    def stage_modules(self, stage: int) -> List[nn.Module]:
        """The modules of ``stage`` (``-1``: the stem) that ``frozen_stages`` freezes."""
        raise NotImplementedError

    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        """Map an official state dict onto this module's keys; leaves our own layout unchanged."""
        return dict(state_dict)

    def checkpoint_layout(self, state_dict: StateDict) -> str:
        """The name of the key layout of ``state_dict`` (before conversion), for messages;
        ``'unknown'`` where the family recognises none."""
        return 'unknown'

    def stage_blocks(self) -> List[List[Union[nn.Module, Sequence[nn.Module]]]]:
        """Per stage, its blocks in forward order; an entry may be several modules at one depth
        (parallel paths). Used by :meth:`get_layer_depth`."""
        raise NotImplementedError(f'{self._name} does not list its blocks (stage_blocks)')

    # --- layer-wise learning-rate decay ---------------------------------------------------------
    def get_layer_depth(self, param_name: str) -> Tuple[int, int]:
        """The depth of a parameter, for layer-wise learning-rate decay.

        The stem is depth 0, the k-th block (counted over all stages) depth k; what else a stage
        owns (merges, output norms) shares the depth of its last block, and anything left gets the
        last depth. ``param_name`` may carry a ``backbone.`` prefix.

        Returns:
            ``(depth, num_depths)`` with ``num_depths = number of blocks + 2``.
        """
        if param_name.startswith('backbone.'):
            param_name = param_name[len('backbone.'):]
        depths = self.__dict__.get('_layer_depths')
        if depths is None:
            depths = self.__dict__['_layer_depths'] = self._build_layer_depths()
        num_depths = depths['__num_depths__']
        if param_name not in depths:
            own = dict(self.named_parameters())
            if param_name not in own:
                raise KeyError(f'{self._name} has no parameter {param_name!r}')
        return depths.get(param_name, num_depths - 1), num_depths

    def _build_layer_depths(self) -> Dict[str, int]:
        names = {id(p): n for n, p in self.named_parameters()}
        depths: Dict[str, int] = {}

        def assign(modules: Iterable[nn.Module], depth: int) -> None:
            for module in modules:
                for param in module.parameters():
                    depths.setdefault(names[id(param)], depth)

        assign(self.stage_modules(-1), 0)
        depth = 0
        for stage, blocks in enumerate(self.stage_blocks()):
            for block in blocks:
                depth += 1
                assign(block if isinstance(block, (list, tuple)) else [block], depth)
            assign(self.stage_modules(stage), depth)
        depths['__num_depths__'] = depth + 2
        return depths

    # --- forward helpers ------------------------------------------------------------------------
    def check_input(self, x: Any) -> None:
        """Raise a clear error for inputs no backbone can take."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f'{self._name} expects a torch.Tensor, got {type(x).__name__}')
        if x.dim() != 4:
            raise ValueError(f'{self._name} expects a 4-D (N, C, H, W) tensor, got {x.dim()}-D '
                             f'with shape {tuple(x.shape)}')
        if not x.is_floating_point():
            raise TypeError(f'{self._name} expects a floating-point tensor, got {x.dtype}; '
                            'normalise images and convert them with .float() first')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{self._name} was built for {self.in_channels} input channels, '
                             f'got {x.shape[1]} (input shape {tuple(x.shape)})')
        if min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(f'{self._name} needs inputs of at least {self.min_input_size} pixels a '
                             f'side, got {tuple(x.shape[-2:])}')

    @property
    def with_cp(self) -> Union[bool, str]:
        """What the backward pass recomputes: ``False``, ``'act'`` (the activations of every
        :class:`~mmvit_plugin.models.layers.Mlp`) or ``True`` (every block, see :meth:`run_block`).
        Settable after building; set again once the subclass has built its layers (see
        ``__init_subclass__``), so ``'act'`` reaches every MLP."""
        return self._with_cp

    @with_cp.setter
    def with_cp(self, value: Union[bool, str]) -> None:
        if value != 'act' and value not in (False, True):
            raise ValueError(f"{self._name}: with_cp must be False, 'act' or True, got {value!r}")
        self._with_cp = value if value == 'act' else bool(value)
        for module in self.modules():
            if isinstance(module, Mlp):
                module.recompute_act = value == 'act'

    def run_block(self, block: Callable[..., Any], *args: Any) -> Any:
        """``block(*args)``, recomputed in backward when ``with_cp=True`` and gradients flow."""
        if self.with_cp is True and torch.is_grad_enabled() and any(
                isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    # --- training state -------------------------------------------------------------------------
    def _freeze_stages(self) -> None:
        for stage in range(-1, self.frozen_stages):
            for module in self.stage_modules(stage):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> 'PyramidBackbone':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    # --- weights --------------------------------------------------------------------------------
    def _convert_on_load(self, module: nn.Module, state_dict: Dict[str, Any], prefix: str,
                         *args: Any) -> None:
        own = {k[len(prefix):]: state_dict.pop(k) for k in list(state_dict) if k.startswith(prefix)}
        if own:
            state_dict.update({prefix + k: v for k, v in self.convert_checkpoint(own).items()})

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            if cfg.get('checkpoint') is None:
                # the weights are already initialised in __init__
                print_log(f'{self._name}: init_cfg.checkpoint is None, starting from random '
                          'initialisation (training from scratch)',
                          logger=MMLogger.get_current_instance(), level=30)
            else:
                self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix', 'backbone.'))
            self._is_init = True
        else:
            super().init_weights()

    def load_pretrained(self, path: str, prefix: Optional[str] = 'backbone.') -> Tuple[List[str], List[str]]:
        """Load the backbone weights of a checkpoint (a path or URI) in any supported layout.

        The rule for starting training applies (:mod:`mmvit_plugin.engine.weight_loading`): a
        file that fills less than half of this backbone's tensors (another backbone, arch or
        layout) raises :class:`CheckpointError` and loads nothing, as does a missing, unreachable
        or unreadable file; smaller gaps (a classifier head, the output norms a classification
        release lacks, a stem for other input channels) are logged and left at their init.

        Returns:
            The missing (or wrong-shaped) and the unexpected keys.
        """
        fit = load_weights(self, load_backbone_state_dict(path, prefix), 'train', source=repr(path))
        return fit.missing + list(fit.mismatched), fit.unexpected
