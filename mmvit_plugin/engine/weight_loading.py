"""One rule for how well a checkpoint must fit a model, on every path that loads one.

Two cases, because they differ:

- ``'evaluate'`` (tools/test.py, tools/infer.py, benchmark rows, mmseg's / mmdet's own test tools
  through ``Runner.test`` / ``Runner.val``) and ``'resume'`` (``Runner.resume``): every tensor of
  the model must be filled, name and shape. A model whose backbone loaded but whose head is random
  cannot be measured, so any missing or wrong-shaped tensor is a :class:`CheckpointError` naming
  them by module, the layout the file looks like and what to do.
- ``'train'`` (a whole-model ``load_from`` before training, a backbone's ``Pretrained`` init,
  ``tools/convert_checkpoint.py --arch``): when fewer than half of the model's tensors are filled,
  or the file's weights for a backbone of ours (alone or in a whole model) are in none of its
  family's layouts, it is the same error (the four backbones share their stage names, so another
  family's file of the same widths fills many tensors by name alone); a smaller mismatch that
  users make on purpose (a new head with another class count, another input channel count) is a
  warning listing the keys left at their init.

:func:`load_weights` applies the rule, deciding before anything is copied. :func:`install` routes
mmengine's loading through it (``_load_checkpoint_to_model``, which ``Runner.load_checkpoint``,
``Runner.resume`` and ``mmengine.runner.load_checkpoint`` share) and tells it the purpose from the
Runner entry point in use (``train``, ``val``, ``test``, ``resume``). Outside those, mmengine's
loads are ``'train'`` unless a caller says otherwise with :func:`load_purpose`.
"""
import contextlib
import contextvars
import functools
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Literal, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import MMLogger, print_log
from mmengine.model import BaseTTAModel, is_model_wrapper

from ..checkpoint import CheckpointError

Purpose = Literal['evaluate', 'resume', 'train']
PURPOSES: Tuple[str, ...] = ('evaluate', 'resume', 'train')
#: Below this fraction of the model's tensors, loading to train is refused, not half-done.
MIN_LOADED_FRACTION = 0.5
#: BatchNorm's step counter: torch fills it for old files, and it changes no output.
_IGNORED = re.compile(r'(^|\.)num_batches_tracked$')

_purpose: contextvars.ContextVar[Purpose] = contextvars.ContextVar('mmvit_load_purpose',
                                                                 default='train')
_source: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar('mmvit_load_source',
                                                                        default=None)


@contextlib.contextmanager
def load_purpose(purpose: Purpose) -> Iterator[None]:
    """Checkpoints loaded through mmengine inside this block follow ``purpose``'s rule."""
    if purpose not in PURPOSES:
        raise ValueError(f'load purpose must be one of {PURPOSES}, got {purpose!r}')
    token = _purpose.set(purpose)
    try:
        yield
    finally:
        _purpose.reset(token)


@contextlib.contextmanager
def _load_source(source: Any) -> Iterator[None]:
    token = _source.set(str(source))
    try:
        yield
    finally:
        _source.reset(token)


@dataclass
class Fit:
    """How a state dict fits a model: what it fills, and what it leaves out or cannot fill."""

    total: int
    missing: List[str] = field(default_factory=list)
    #: key -> (shape in the file, shape in the model)
    mismatched: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=dict)
    unexpected: List[str] = field(default_factory=list)

    @property
    def filled(self) -> int:
        return self.total - len(self.missing) - len(self.mismatched)

    def unfilled_by_module(self) -> str:
        """``'decode_head: 24 tensors missing, backbone: 2 of wrong shape'``."""
        parts = []
        for what, keys in (('missing', self.missing), ('of wrong shape', list(self.mismatched))):
            for module, n in Counter(_module_of(k) for k in keys).most_common():
                parts.append(f'{module}: {n} tensor{"s" * (n != 1)} {what}')
        return ', '.join(parts)


def _module_of(key: str) -> str:
    """The top-level module a key belongs to (``decode_head``), or the key of a bare parameter."""
    return key.split('.', 1)[0] if '.' in key else key


@dataclass
class ModelLayout:
    """What the fit rule reads of a model: the shape of every state-dict entry, and the
    ``load_state_dict`` pre-hooks of its modules by module name (our backbones convert foreign key
    layouts there). :meth:`of` takes it from a plain model; a sharding wrapper (FSDP) takes it
    before it flattens the parameters (:mod:`mmvit_plugin.engine.fsdp`)."""

    shapes: Dict[str, Tuple[int, ...]]
    pre_hooks: List[Tuple[str, Any]]

    @classmethod
    def of(cls, model: nn.Module) -> 'ModelLayout':
        return cls(shapes={k: tuple(getattr(v, 'shape', ())) for k, v in model.state_dict().items()
                           if not _IGNORED.search(k)},
                   pre_hooks=[(name, hook) for name, module in model.named_modules()
                              for hook in module._load_state_dict_pre_hooks.values()])


def fit_of(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
           layout: Optional[ModelLayout] = None) -> Tuple[Fit, 'OrderedDict[str, torch.Tensor]']:
    """How ``state_dict`` fits ``model`` (or ``layout``, when given), nothing copied, and the state
    dict as loading sees it.

    Loading runs every module's ``load_state_dict`` pre-hooks first (our backbones convert foreign
    key layouts there); they run here on a copy, so the keys compared are the converted ones.
    """
    layout = layout or ModelLayout.of(model)
    converted: 'OrderedDict[str, torch.Tensor]' = OrderedDict(state_dict)
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        converted._metadata = metadata  # type: ignore[attr-defined]
    for name, hook in layout.pre_hooks:
        prefix = f'{name}.' if name else ''
        local_metadata = {} if metadata is None else metadata.get(name, {})
        hook(converted, prefix, local_metadata, True, [], [], [])
    return fit_against(layout.shapes, converted), converted


def fit_against(shapes: Mapping[str, Tuple[int, ...]], state_dict: Mapping[str, Any]) -> Fit:
    """How ``state_dict`` fills a model whose entries have ``shapes`` (key -> shape)."""
    own = {k: tuple(v) for k, v in shapes.items() if not _IGNORED.search(k)}
    fit = Fit(total=len(own))
    for key, value in state_dict.items():
        if _IGNORED.search(key):
            continue
        if key not in own:
            fit.unexpected.append(key)
        elif hasattr(value, 'size') and tuple(value.size()) != own[key]:
            fit.mismatched[key] = (tuple(value.size()), own[key])
    fit.missing = [k for k in own if k not in state_dict]
    return fit


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], purpose: Purpose,
                 source: Optional[str] = None, strict: bool = False,
                 layout: Optional[ModelLayout] = None) -> Fit:
    """Load ``state_dict`` into ``model`` under ``purpose``'s rule (module docstring).

    The rule is checked before anything is copied, so a refused file leaves the model as it was;
    then what torch actually filled is checked once more. Wrong-shaped tensors are never copied.
    ``strict=True`` (a caller of mmengine asking for it) also refuses unexpected keys.
    ``layout``: the plain model's :class:`ModelLayout` when ``model`` is a sharding wrapper that
    loads whole-model state dicts itself (FSDP with a full state dict); the state dict is then
    loaded through the wrapper, not into the module it wraps.

    Returns:
        The :class:`Fit` of the load; a warning lists what was left at its init or ignored.

    Raises:
        CheckpointError: the file does not fit as ``purpose`` requires.
    """
    if purpose not in PURPOSES:
        raise ValueError(f'load purpose must be one of {PURPOSES}, got {purpose!r}')
    if layout is None:
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module  # as mmengine loads: into the wrapped model (DDP, test-time aug)
        shown = model
    else:
        shown = getattr(model, 'module', model)  # named in messages: what the wrapper wraps
    source = source or _source.get() or 'the checkpoint'
    fit, converted = fit_of(model, state_dict, layout)
    _enforce(shown, state_dict, fit, purpose, source, strict)
    loadable: 'OrderedDict[str, torch.Tensor]' = OrderedDict(
        (k, v) for k, v in converted.items() if k not in fit.mismatched)
    if hasattr(converted, '_metadata'):
        loadable._metadata = converted._metadata  # type: ignore[attr-defined]
    result = model.load_state_dict(loadable, strict=False)
    fit.missing = [k for k in map(_plain_key, result.missing_keys)
                   if k not in fit.mismatched and not _IGNORED.search(k)]
    fit.unexpected = [k for k in map(_plain_key, result.unexpected_keys) if not _IGNORED.search(k)]
    _enforce(shown, state_dict, fit, purpose, source, strict)
    _report(shown, fit, source)
    return fit


#: What FSDP and activation-checkpoint wrappers insert into the names of the modules they wrap.
_WRAPPER_PREFIXES = ('_fsdp_wrapped_module.', '_checkpoint_wrapped_module.')


def _plain_key(key: str) -> str:
    """``key`` as the plain model names it (a wrapper's missing keys carry its prefixes)."""
    for prefix in _WRAPPER_PREFIXES:
        key = key.replace(prefix, '')
    return key


def _enforce(model: nn.Module, state_dict: Mapping[str, torch.Tensor], fit: Fit, purpose: Purpose,
             source: str, strict: bool) -> None:
    unfilled = bool(fit.missing or fit.mismatched)
    if purpose == 'train' and not strict:
        refused = (fit.filled < MIN_LOADED_FRACTION * fit.total
                   or _backbone_layout(model, state_dict) == 'unknown')
    else:
        refused = unfilled or (strict and bool(fit.unexpected))
    if refused:
        raise CheckpointError(_refusal(model, state_dict, fit, purpose, source, strict))


def _refusal(model: nn.Module, state_dict: Mapping[str, torch.Tensor], fit: Fit, purpose: Purpose,
             source: str, strict: bool) -> str:
    name = type(model).__name__
    lines = [f'{source} ({describe_checkpoint(model, state_dict)}) does not fit this {name}: '
             f'only {fit.filled} of its {fit.total} tensors are in the file'
             + (f' ({fit.unfilled_by_module()})' if fit.unfilled_by_module() else '') + '.']
    if fit.missing:
        lines.append(f'Missing: {key_families(fit.missing)}.')
    if fit.mismatched:
        shown = list(fit.mismatched.items())[:5]
        lines.append(f'Wrong shape ({len(fit.mismatched)}): ' + '; '.join(
            f'{k}: file {tuple(f)} vs model {tuple(m)}' for k, (f, m) in shown)
            + ('; …' if len(fit.mismatched) > len(shown) else '') + '.')
    if fit.unexpected:
        lines.append(f'In the file but not in the model: {key_families(fit.unexpected)}.')
    lines.append(_what_to_do(model, purpose, strict))
    return ' '.join(lines)


def _what_to_do(model: nn.Module, purpose: Purpose, strict: bool) -> str:
    if purpose == 'evaluate':
        return ('A model with tensors left at their init cannot be evaluated: use the checkpoint '
                'trained with this config (same backbone, arch and heads). To start training from '
                'this file instead, give it as load_from (or the backbone\'s init_cfg) in training, '
                'where a partial fit is a warning.')
    if purpose == 'resume':
        return ('--resume continues a run of this config, so every tensor must be in the file: '
                'resume from a checkpoint of this config, or give the file as load_from to start '
                'a new run from it.')
    if strict:
        return 'strict loading was asked for: every key must match exactly.'
    if hasattr(model, 'checkpoint_layout'):
        return (f'Is it a checkpoint of another backbone or arch? Use {type(model).__name__} '
                'weights of the same arch, in a supported layout (README, "Official '
                'checkpoints"; tools/convert_checkpoint.py --arch checks a file).')
    return ('Fewer than half of the model\'s tensors would load: is it a checkpoint of another '
            'model (another backbone or arch)? Use weights of this model, or give backbone '
            'weights as model.backbone.init_cfg=dict(type=\'Pretrained\', checkpoint=...).')


#: Top-level modules of whole-model files, and what they say a file is.
_WHOLE_MODELS = (
    ({'decode_head'}, 'an mmseg segmentor'),
    ({'rpn_head'}, 'an mmdet two-stage detector'),
    ({'roi_head'}, 'an mmdet two-stage detector'),
    ({'bbox_head'}, 'an mmdet one-stage detector'),
    ({'panoptic_head'}, 'an mmdet Mask2Former'),
    ({'head'}, 'an mmpretrain classifier'),
)


def _backbone_layout(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The key layout of the backbone weights in ``state_dict`` as the backbone of ours in
    ``model`` (or ``model`` itself) names it; ``None`` where there is no such backbone or the
    file holds none of its weights."""
    if hasattr(model, 'checkpoint_layout'):
        return model.checkpoint_layout(dict(state_dict)) if state_dict else None
    backbone = getattr(model, 'backbone', None)
    if not hasattr(backbone, 'checkpoint_layout'):
        return None
    part = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
    return backbone.checkpoint_layout(part) if part else None


def describe_checkpoint(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> str:
    """What a file looks like, for messages: ``'timm Swin layout'`` for a backbone, ``'an mmseg
    segmentor file (backbone, decode_head), backbone in the official CSWin layout'`` for a model."""
    if hasattr(model, 'checkpoint_layout'):  # a backbone of ours
        return f'{model.checkpoint_layout(dict(state_dict))} layout'
    tops = sorted({_module_of(k) for k in state_dict})
    kind = 'a backbone or classification file'
    if 'backbone' in tops:
        kind = next((what for modules, what in _WHOLE_MODELS if modules & set(tops)),
                    'a whole-model file')
    shown = ', '.join(tops[:6]) + (', …' if len(tops) > 6 else '')
    text = f'{kind} ({shown})'
    backbone = getattr(model, 'backbone', None)
    if hasattr(backbone, 'checkpoint_layout'):
        part = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
        layout = backbone.checkpoint_layout(part or dict(state_dict))
        text += (f', backbone in the {layout} layout' if layout != 'unknown' else
                 f', backbone keys not in any {type(backbone).__name__} layout')
    return text


def _report(model: nn.Module, fit: Fit, source: str) -> None:
    logger = MMLogger.get_current_instance()
    name = type(model).__name__
    print_log(f'{name}: loaded {fit.filled}/{fit.total} tensors from {source}', logger=logger)
    if fit.missing:
        print_log(f'{name}: missing keys (left at their init): {_listed(fit.missing)}',
                  logger=logger, level=30)
    if fit.mismatched:
        print_log(f'{name}: keys of another shape (left at their init): ' + _listed(
            [f'{k} (file {tuple(f)}, model {tuple(m)})' for k, (f, m) in fit.mismatched.items()]),
            logger=logger, level=30)
    if fit.unexpected:
        print_log(f'{name}: unexpected keys (ignored): {_listed(fit.unexpected)}',
                  logger=logger, level=30)


def key_families(keys: List[str], limit: int = 5) -> str:
    """Keys grouped with their block numbers starred, the largest groups first:
    ``'stages.*.blocks.*.attn.w_msa.qkv.weight (12), …'``."""
    counts = Counter(re.sub(r'(?<=\.)\d+(?=\.)|^\d+(?=\.)', '*', k) for k in keys)
    if not counts:
        return 'none'
    shown = ', '.join(f'{family} ({n})' for family, n in counts.most_common(limit))
    more = len(counts) - limit
    return shown + (f' and {more} more families' if more > 0 else '')


def _listed(keys: List[str], limit: int = 20) -> str:
    more = f' … and {len(keys) - limit} more' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


# --- mmengine ------------------------------------------------------------------------------------
def _load_checkpoint_to_model(model: nn.Module, checkpoint: Dict[str, Any], strict: bool = False,
                              logger: Any = None,
                              revise_keys: List[Tuple[str, str]] = [(r'^module\.', '')]) -> Dict[str, Any]:  # noqa: B006
    """mmengine's ``_load_checkpoint_to_model`` (same arguments, same key handling), with the rule
    of :func:`load_weights` for the purpose in force."""
    state_dict = checkpoint.get('state_dict', checkpoint)
    metadata = getattr(state_dict, '_metadata', OrderedDict())
    for pattern, replacement in revise_keys:
        state_dict = OrderedDict((re.sub(pattern, replacement, k), v) for k, v in state_dict.items())
    state_dict._metadata = metadata
    load_weights(model, state_dict, _purpose.get(), strict=strict)
    return checkpoint


def _with_purpose(method: Any, purpose: Purpose) -> Any:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with load_purpose(purpose):
            return method(*args, **kwargs)
    wrapper.__mmvit_wrapped__ = True  # type: ignore[attr-defined]
    return wrapper


def _with_source(function: Any, position: int) -> Any:
    """``function`` with its checkpoint argument (``filename``, at ``position``) named in errors."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        filename = kwargs['filename'] if 'filename' in kwargs else args[position]
        with _load_source(filename):
            return function(*args, **kwargs)
    wrapper.__mmvit_wrapped__ = True  # type: ignore[attr-defined]
    return wrapper


def install() -> None:
    """Route mmengine's model loading through :func:`load_weights` (once, at import)."""
    import mmengine.runner as mm_runner_package
    from mmengine.runner import FlexibleRunner, Runner
    from mmengine.runner import checkpoint as mm_checkpoint
    from mmengine.runner import runner as mm_runner
    if getattr(Runner.train, '__mmvit_wrapped__', False):
        return
    mm_checkpoint._load_checkpoint_to_model = _load_checkpoint_to_model
    mm_runner._load_checkpoint_to_model = _load_checkpoint_to_model
    mm_checkpoint.load_checkpoint = _with_source(mm_checkpoint.load_checkpoint, 1)
    mm_runner_package.load_checkpoint = mm_checkpoint.load_checkpoint  # mmseg's / mmdet's init_model
    for runner in (Runner, FlexibleRunner):
        runner.load_checkpoint = _with_source(runner.load_checkpoint, 1)
        runner.train = _with_purpose(runner.train, 'train')
        runner.val = _with_purpose(runner.val, 'evaluate')
        runner.test = _with_purpose(runner.test, 'evaluate')
        runner.resume = _with_purpose(runner.resume, 'resume')
