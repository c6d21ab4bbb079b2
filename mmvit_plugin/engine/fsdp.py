"""mmengine's ``FlexibleRunner`` with ``FSDPStrategy`` for this package's backbones
(configs/_base_/runtime/fsdp.py):

- :func:`mmvit_block_wrap_policy`, an FSDP auto-wrap policy (mmengine's ``FUNCTIONS`` registry):
  every block of our backbones becomes its own FSDP unit (sharded, gathered only while it runs),
  by module class, the classes read from the backbones' own ``stage_blocks()``; more classes by
  name (e.g. Mask2Former's transformer layers);
- the fit rule of :mod:`.weight_loading` on ``FSDPStrategy``'s load path: mmengine 0.10.7's
  ``FSDPStrategy.load_model_state_dict`` calls the FSDP model's ``load_state_dict`` directly,
  bypassing ``_load_checkpoint_to_model``, so a file missing half the model would load silently.
  :func:`install` records the plain model's :class:`~.weight_loading.ModelLayout` when the
  strategy builds it (before FSDP flattens and shards the parameters) and loads through
  :func:`~.weight_loading.load_weights` with it (full state dicts) or checks a sharded file
  against the model's own sharded state dict (``state_dict_cfg='local'``);
- the optimizer built on the plain model: FSDP with ``use_orig_params=True`` shows the optimizer
  constructor flattened 1-D shards under names with ``_fsdp_wrapped_module.`` in them, so rules
  by shape (no weight decay on 1-D parameters) and by backbone depth (layer-wise lr decay) would
  go wrong. :func:`install` has ``FSDPStrategy`` build the optimizer wrapper from the config on
  the plain model just before wrapping it, then moves every parameter group onto the sharded
  parameters by name (:func:`on_sharded_parameters`);
- :class:`FSDPOptimWrapper`: mmengine's ``OptimWrapper`` clips gradients with
  ``torch.nn.utils.clip_grad_norm_`` over the parameters it holds, which under FSDP are this
  rank's shards: each rank would clip by the norm of its own shard. This one clips by the norm of
  the whole model (``FullyShardedDataParallel.clip_grad_norm_``, which all-reduces the shards');
- resuming: mmengine 0.10.7 passes the optimizer state to torch's ``optim_state_dict_to_load``
  in an order torch >= 2.1 no longer takes; :func:`install` calls it by keyword;
- FSDP on CPU (gloo): :func:`cpu_strategy` gives FSDP ``device_id='cpu'`` (mmengine passes the
  local rank, a CUDA device index), called by :func:`~.distributed.setup_cpu_distributed`.
"""
import contextlib
import copy
import functools
import inspect
import re
from collections import OrderedDict
from typing import Any, Iterator, Optional, Sequence, Set

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmengine.registry import FUNCTIONS, OPTIM_WRAPPERS

from .weight_loading import (ModelLayout, _enforce, _load_source, _purpose, _report, fit_against,
                             load_weights)

#: Classes of the backbone blocks seen so far (filled as the policy meets our backbones).
_BLOCK_TYPES: Set[type] = set()
#: Strategies that shard with FSDP (names as configs give them).
FSDP_STRATEGIES = ('FSDPStrategy', )


def backbone_blocks(backbone: nn.Module) -> Iterator[nn.Module]:
    """The blocks a backbone of this package lists in ``stage_blocks()`` (parallel paths one by
    one)."""
    for stage in backbone.stage_blocks():
        for entry in stage:
            yield from (entry if isinstance(entry, (list, tuple)) else [entry])


@FUNCTIONS.register_module()
def mmvit_block_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int,
                            module_names: Sequence[str] = ()) -> bool:
    """FSDP auto-wrap policy: wrap every block of this package's backbones (the classes their
    ``stage_blocks()`` list) and every module whose class name is in ``module_names``.

    FSDP asks ``recurse=True`` of a module before it decides on the module's children, so a
    backbone is always met before its blocks; the root module becomes the unit of everything
    left (stems, merges, necks, heads).

    Config::

        model_wrapper=dict(
            type='MMFullyShardedDataParallel', use_orig_params=True,
            auto_wrap_policy=dict(type='mmvit_block_wrap_policy',
                                  module_names=['Mask2FormerTransformerDecoderLayer']))
    """
    if recurse:
        from mmvit_plugin.models.backbones.base import PyramidBackbone
        if isinstance(module, PyramidBackbone):
            _BLOCK_TYPES.update(type(block) for block in backbone_blocks(module))
        return True
    return type(module) in _BLOCK_TYPES or type(module).__name__ in module_names


def is_fsdp_config(cfg: Any) -> bool:
    """Whether ``cfg`` trains with FlexibleRunner and an FSDP strategy."""
    strategy = cfg.get('strategy') or {}
    kind = strategy.get('type') if isinstance(strategy, dict) else type(strategy).__name__
    kind = getattr(kind, '__name__', kind)
    return cfg.get('runner_type') == 'FlexibleRunner' and kind in FSDP_STRATEGIES


def cpu_strategy(cfg: Any) -> None:
    """Let ``cfg``'s FlexibleRunner strategy wrap the model on CPU: FSDP with
    ``device_id='cpu'``, DDP without device ids (mmengine passes the local rank, a CUDA index)."""
    if cfg.get('runner_type') != 'FlexibleRunner' or not isinstance(cfg.get('strategy'), dict):
        return
    strategy = cfg.strategy
    wrapper = strategy.get('model_wrapper') or {}
    if is_fsdp_config(cfg):
        wrapper['device_id'] = 'cpu'
    elif strategy.get('type') == 'DDPStrategy':
        wrapper.setdefault('type', 'MMDistributedDataParallel')
        wrapper.setdefault('broadcast_buffers', False)
        wrapper['device_ids'] = None
    else:
        return
    strategy['model_wrapper'] = wrapper


@OPTIM_WRAPPERS.register_module()
class FSDPOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose ``clip_grad=dict(max_norm=...)`` clips by the gradient norm of the
    whole FSDP model, not of this rank's shards (``clip_grad=dict(type='value', ...)`` is
    element-wise and needs no change). Outside FSDP it is ``OptimWrapper``."""

    _fsdp_model: Optional[nn.Module] = None

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        from torch.distributed.fsdp import FullyShardedDataParallel
        if isinstance(model, FullyShardedDataParallel):
            self._fsdp_model = model
        with super().optim_context(model):
            yield

    def _clip_grad(self) -> None:
        if self._fsdp_model is None or self.clip_func is not torch.nn.utils.clip_grad_norm_:
            return super()._clip_grad()
        grad_norm = self._fsdp_model.clip_grad_norm_(**self.clip_grad_kwargs)
        self.message_hub.update_scalar(f'train/{self.grad_name}', float(grad_norm))


# --- the fit rule on FSDPStrategy's load path ---------------------------------------------------
def _load_model_state_dict(self: Any, state_dict: dict, *, strict: bool = False,
                           revise_keys: list = [(r'^module.', '')]) -> None:  # noqa: B006
    """``FSDPStrategy.load_model_state_dict`` under the fit rule of the purpose in force."""
    from torch.distributed.fsdp import StateDictType
    metadata = getattr(state_dict, '_metadata', None)
    for pattern, replacement in revise_keys:
        state_dict = OrderedDict(
            (re.sub(pattern, replacement, k), v) for k, v in state_dict.items())
    if metadata is not None:
        state_dict._metadata = metadata  # type: ignore[attr-defined]
    if self.state_dict_type == StateDictType.FULL_STATE_DICT:
        layout = getattr(self, '_mmvit_layout', None) or ModelLayout.of(self.model.module)
        load_weights(self.model, state_dict, _purpose.get(), strict=strict, layout=layout)
        return
    # a sharded file ('local'): each rank's shard against the model's own sharded state dict
    own = {k: tuple(v.size()) for k, v in self.model.state_dict().items() if hasattr(v, 'size')}
    fit = fit_against(own, state_dict)
    source = _load_source_name()
    _enforce(self.model.module, state_dict, fit, _purpose.get(), source, strict)
    self.model.load_state_dict(state_dict, strict=strict)
    _report(self.model.module, fit, source)


def on_sharded_parameters(optim_wrapper: Any, model: nn.Module, id_to_name: dict) -> Any:
    """``optim_wrapper`` (built on the plain model, no step taken yet) with its optimizer rebuilt
    on the FSDP model's parameters: the same parameter groups and settings, each parameter
    replaced by the FSDP parameter of the same name. (mmengine's own path for built wrappers
    passes every entry of ``optimizer.defaults`` back to the optimizer's constructor, which fails
    for torch 2.14's AdamW: ``decoupled_weight_decay``.)"""
    optimizer = optim_wrapper.optimizer
    if optimizer.state:
        raise RuntimeError('the optimizer built before FSDP wrapped the model has taken a step')
    sharded = {_unwrapped_name(n): p for n, p in model.named_parameters()}
    groups = []
    for group in optimizer.param_groups:
        groups.append(dict({k: v for k, v in group.items() if k != 'params'},
                           params=[sharded[id_to_name[id(p)]] for p in group['params']]))
    accepted = inspect.signature(type(optimizer).__init__).parameters
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted}
    optim_wrapper.optimizer = type(optimizer)(groups, **defaults)
    return optim_wrapper


def _unwrapped_name(name: str) -> str:
    return name.replace('_fsdp_wrapped_module.', '')


def _load_optim_state_dict(self: Any, state_dict: dict) -> None:
    """``FSDPStrategy.load_optim_state_dict`` with torch's argument order: mmengine 0.10.7 calls
    ``FSDP.optim_state_dict_to_load(state_dict, model, optimizer)``, but torch >= 2.1 takes
    ``(model, optim, optim_state_dict)``, so every resume of an FSDP run failed."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    optim_state_dict = FSDP.optim_state_dict_to_load(
        model=self.model, optim=self.optim_wrapper.optimizer, optim_state_dict=state_dict)
    self.optim_wrapper.load_state_dict(optim_state_dict)


def _load_source_name() -> str:
    from .weight_loading import _source
    return _source.get() or 'the checkpoint'


def _with_source(function: Any) -> Any:
    """A strategy's ``load_checkpoint(self, filename, ...)`` with the file named in errors."""
    @functools.wraps(function)
    def wrapper(self: Any, filename: str, *args: Any, **kwargs: Any) -> Any:
        with _load_source(filename):
            return function(self, filename, *args, **kwargs)
    wrapper.__mmvit_wrapped__ = True  # type: ignore[attr-defined]
    return wrapper


def install() -> None:
    """FSDPStrategy with the fit rule on its load path and the optimizer built on the plain model
    (once, at import)."""
    from mmengine._strategy import FSDPStrategy, SingleDeviceStrategy
    from mmengine.model import is_model_wrapper
    from mmengine.optim import AmpOptimWrapper
    from mmengine.optim import build_optim_wrapper as mm_build_optim_wrapper
    if getattr(FSDPStrategy.load_model_state_dict, '__mmvit_wrapped__', False):
        return
    build_model = FSDPStrategy.build_model

    @functools.wraps(build_model)
    def build_and_record(self: Any, model: Any) -> nn.Module:
        model = build_model(self, model)
        self._mmvit_layout = ModelLayout.of(model)
        return model

    prepare = FSDPStrategy.prepare
    wrap_model = FSDPStrategy._wrap_model
    build_optim_wrapper = FSDPStrategy.build_optim_wrapper

    @functools.wraps(prepare)
    def prepare_with_plain_optimizer(self: Any, model: Any, *, optim_wrapper: Any = None,
                                     **kwargs: Any) -> Any:
        if isinstance(optim_wrapper, dict) and not self._prepared and (
                'optimizer' in optim_wrapper or 'constructor' in optim_wrapper):
            cfg = copy.deepcopy(optim_wrapper)
            cfg.setdefault('type', 'OptimWrapper')
            if cfg['type'] in ('AmpOptimWrapper', AmpOptimWrapper):
                cfg.setdefault('use_fsdp', True)  # as mmengine's FSDPStrategy sets it
            self._mmvit_optim_cfg = cfg
        return prepare(self, model, optim_wrapper=optim_wrapper, **kwargs)

    @functools.wraps(wrap_model)
    def wrap_after_building_the_optimizer(self: Any, model: nn.Module) -> Any:
        cfg = self.__dict__.pop('_mmvit_optim_cfg', None)
        if cfg is not None and not is_model_wrapper(model):
            self._mmvit_optim_wrapper = mm_build_optim_wrapper(model, cfg)
        return wrap_model(self, model)

    @functools.wraps(build_optim_wrapper)
    def build_optim_wrapper_from_plain(self: Any, optim_wrapper: Any, model: Any = None) -> Any:
        built = self.__dict__.pop('_mmvit_optim_wrapper', None)
        if built is None:
            return build_optim_wrapper(self, optim_wrapper, model)
        return on_sharded_parameters(built, model, self.id_to_name)

    _load_model_state_dict.__mmvit_wrapped__ = True  # type: ignore[attr-defined]
    FSDPStrategy.prepare = prepare_with_plain_optimizer
    FSDPStrategy._wrap_model = wrap_after_building_the_optimizer
    FSDPStrategy.build_optim_wrapper = build_optim_wrapper_from_plain
    FSDPStrategy.build_model = build_and_record
    FSDPStrategy.load_model_state_dict = _load_model_state_dict
    FSDPStrategy.load_optim_state_dict = _load_optim_state_dict
    for strategy in (SingleDeviceStrategy, FSDPStrategy):  # FSDP's reads rank files itself
        strategy.load_checkpoint = _with_source(strategy.load_checkpoint)
