"""Ours against the official implementations: features and gradients at odd sizes.

The official code is never part of this package: the functions here take the path of a user's
clone of each official repository, import the model file from it (:func:`load_official_module`),
build the official dense backbone for an arch (:func:`build_official`), copy our (randomised)
weights into it (:func:`to_official_state_dict`, the inverse of the renames in
``mmvit_plugin/models/backbones/conversion.py``) and compare, per level, the features and the
gradients of a fixed random projection loss (input gradient and every parameter gradient) in fp32,
eval mode (:func:`compare`). ``tools/compare_official.py`` is the command line;
:func:`record_reference` writes the small recorded case that the test suite checks without the
official code (``tests/data/official_reference.pt.gz``).

Which official file each family runs, and where it cannot take a size:

* Swin: the dense backbone of the official mmseg 0.x / mmdet 2.x forks
  (``mmseg/models/backbones/swin_transformer.py`` of SwinTransformer/Swin-Transformer-Semantic-
  Segmentation, or ``mmdet/...`` of -Object-Detection). It pads the input to the patch size, each
  block's map to the window size (right / bottom) and odd maps before merging: any size >= 1 pixel
  is defined, as ours. microsoft/Swin-Transformer itself only holds the classifier
  (``models/swin_transformer.py``), which fixes the input resolution when it is built (attention
  masks, ``assert L == H * W``) and floors non-multiples of the patch size: it cannot take 97x131,
  so a clone of it is refused with that explanation.
* CSWin: ``segmentation/backbone/cswin_transformer.py`` (dense, output norms ``norm1..4``). It pads
  each stripe split symmetrically (top/left get the smaller half), as ours: any size is defined.
  Its widths grow by ``heads[i+1] // heads[i]``, not by 2: for CSWin-L (heads 6, 12, 24, 24) it
  builds a narrower last stage than the classifier and ours, so L cannot be compared with the dense
  file (reported as not comparable). The classifier ``models/cswin.py`` fixes the resolution at
  build time (square, each stage a multiple of its split) and is not used.
* CvT: ``lib/models/cls_cvt.py`` (there is no official dense backbone). The three official stages
  are wrapped to return each stage's map (:class:`CvTStages`, the official modules under their own
  names ``stage{i}``); our extra ``stages.3`` has no official counterpart and is not compared
  (``out_indices=(0, 1, 2)``). Convolutions only: any size is defined.
* MPViT: ``semantic_segmentation/backbone/mpvit.py`` (dense). Strided convolutions only: any size.

Imports the official files need that are not installed (or would clash) are stubbed, only while
that file is executed, through the module's own ``__import__`` (nothing is put in ``sys.modules``
under a real package's name; :data:`STUBS`):

* ``mmcv_custom``, ``mmcv.runner`` (mmcv 1.x): ``load_checkpoint``, which raises if called (weights
  are copied, never loaded from a file by the official code);
* ``mmseg.utils`` (mmseg 0.x): ``get_root_logger`` (a ``logging`` logger);
* ``mmseg.models.builder`` / the relative ``..builder``: ``BACKBONES``, a registry whose
  ``register_module()`` returns the class unchanged (registering in the installed mmseg 1.x would
  clash with its own ``SwinTransformer``);
* ``torch._six`` (removed from torch 2): ``container_abcs = collections.abc``;
* CvT's relative ``.registry`` and ``timm.models.registry``: ``register_model`` returning the
  function unchanged (so no official name lands in timm's registry);
* ``mmcv.cnn`` only when mmcv is not installed: ``build_norm_layer`` for ``BN`` / ``SyncBN`` /
  ``GN`` / ``LN`` (MPViT's BatchNorms).

Everything else (timm's layers, einops, numpy, scipy) is imported for real.
"""
import builtins
import collections.abc
import copy
import json
import logging
import math
import re
import subprocess
import types
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from ..checkpoint import rename_keys
from ..models.backbones.conversion import compile_rules
from ..models.families import backbone_class, checkpoint_converter, family_of
from ..numerics import relative_error

StateDict = Dict[str, torch.Tensor]

FAMILIES = ('swin', 'cswin', 'cvt', 'mpvit')

#: The official model file of each family, relative to the clone's root (first found wins).
OFFICIAL_FILES: Dict[str, Tuple[str, ...]] = {
    'swin': ('mmseg/models/backbones/swin_transformer.py',
             'mmdet/models/backbones/swin_transformer.py'),
    'cswin': ('segmentation/backbone/cswin_transformer.py', ),
    'cvt': ('lib/models/cls_cvt.py', ),
    'mpvit': ('semantic_segmentation/backbone/mpvit.py', ),
}

#: The archs of the README's table (every arch of ours with an official counterpart).
FULL_ARCHS: Dict[str, Tuple[str, ...]] = {
    'swin': ('tiny', 'small', 'base', 'large'),
    'cswin': ('tiny', 'small', 'base', 'large'),
    'cvt': ('13', '21', 'w24'),
    'mpvit': ('tiny', 'xsmall', 'small', 'base'),
}

#: The attention implementations each family has (MPViT has no switch).
ATTN_IMPLS: Dict[str, Tuple[Optional[str], ...]] = {
    'swin': ('explicit', 'sdpa'), 'cswin': ('explicit', 'sdpa'), 'cvt': ('explicit', 'sdpa'),
    'mpvit': (None, ),
}

DEFAULT_SIZES = ((97, 131), (333, 517))


# --- our keys -> official keys ------------------------------------------------------------------
#: Our keys back in the official names, per family: the inverse of the renames of the official
#: layouts in ``conversion.py`` (first matching rule wins; other keys, the stems, keep their name).
OFFICIAL_NAME_RULES = {
    'swin': compile_rules((r'^stages\.(\d)\.out_norm\.', r'norm\1.'),
                          (r'^stages\.(\d)\.', r'layers.\1.')),
    'cswin': compile_rules(
        (r'^patch_embed\.proj\.', 'stage1_conv_embed.0.'),
        (r'^patch_embed\.norm\.', 'stage1_conv_embed.2.'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.attn\.lepe\.(\d+)\.',
         lambda m: f'stage{int(m[1]) + 1}.{m[2]}.attns.{m[3]}.get_v.'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.attn\.(qkv|proj)\.',
         lambda m: f'stage{int(m[1]) + 1}.{m[2]}.{m[3]}.'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'stage{int(m[1]) + 1}.{m[2]}.'),
        (r'^stages\.(\d)\.downsample\.proj\.', lambda m: f'merge{int(m[1]) + 1}.conv.'),
        (r'^stages\.(\d)\.downsample\.norm\.', lambda m: f'merge{int(m[1]) + 1}.norm.'),
        (r'^stages\.(\d)\.out_norm\.', lambda m: f'norm{int(m[1]) + 1}.'),
    ),
    'cvt': compile_rules((r'^stages\.(\d)\.', r'stage\1.')),
    'mpvit': compile_rules((r'^stages\.(\d)\.patch_embed\.', r'patch_embed_stages.\1.'),
                           (r'^stages\.(\d)\.', r'mhca_stages.\1.')),
}

_MPVIT_SHARED = re.compile(r'^(mhca_stages\.\d+\.mhca_blks\.\d+\.)(cpe|crpe)\.(.*)$')
_MPVIT_LAYER = re.compile(r'^(mhca_stages\.\d+\.mhca_blks\.\d+\.)MHCA_layers\.(\d+)\.')


def official_names(state_dict: StateDict, family: str) -> StateDict:
    """``state_dict`` (our keys) under the official names of ``family``: the renames only (for
    MPViT each shared position encoding stays once, under its encoder: release 0.1's layout; see
    :func:`to_official_state_dict` for the file the official module writes)."""
    return rename_keys(dict(state_dict), OFFICIAL_NAME_RULES[family_of(family)])


def to_official_state_dict(state_dict: StateDict, family: str) -> StateDict:
    """``state_dict`` (ours) as the official dense module's ``state_dict``: :func:`official_names`,
    and for MPViT the shared ``cpe`` / ``crpe`` repeated under every layer of their encoder (the
    official modules hold them there too: ``MHCA_layers.{l}.cpe``, ``MHCA_layers.{l}.crpe``,
    ``MHCA_layers.{l}.factoratt_crpe.crpe``). Derived buffers the official modules keep (Swin's
    ``relative_position_index``) are not ours and stay theirs."""
    family = family_of(family)
    out = official_names(state_dict, family)
    if family == 'mpvit':
        layers: Dict[str, set] = {}
        for key in out:
            m = _MPVIT_LAYER.match(key)
            if m:
                layers.setdefault(m[1], set()).add(int(m[2]))
        copies = {}
        for key, value in out.items():
            m = _MPVIT_SHARED.match(key)
            if not m:
                continue
            for layer in sorted(layers.get(m[1], ())):
                base = f'{m[1]}MHCA_layers.{layer}.'
                copies[f'{base}{m[2]}.{m[3]}'] = value
                if m[2] == 'crpe':
                    copies[f'{base}factoratt_crpe.crpe.{m[3]}'] = value
        out.update(copies)
    return out


# --- importing the official files ---------------------------------------------------------------
class _Registry:
    """Stands in for an mmcv 1.x registry: ``register_module()`` returns the class unchanged."""

    def __init__(self, name: str) -> None:
        self.name = name

    def register_module(self, name=None, force=False, module=None):
        if module is not None:
            return module
        if isinstance(name, type):
            return name
        return lambda cls: cls


def _no_checkpoint_loading(*args, **kwargs):
    raise RuntimeError('mmvit_plugin.benchmark.official: the official code may not load files '
                       'here (weights are copied from our module)')


def _stub(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def _build_norm_layer(cfg: dict, num_features: int, postfix: Union[int, str] = ''):
    """mmcv's ``build_norm_layer`` for the norms the official files use (when mmcv is absent)."""
    cfg = dict(cfg)
    kind = cfg.pop('type')
    cfg.pop('requires_grad', None)
    abbr, layer = {'BN': ('bn', nn.BatchNorm2d), 'SyncBN': ('bn', nn.BatchNorm2d),
                   'LN': ('ln', nn.LayerNorm), 'GN': ('gn', None)}[kind]
    if kind == 'GN':
        return f'gn{postfix}', nn.GroupNorm(num_channels=num_features, **cfg)
    return f'{abbr}{postfix}', layer(num_features, **cfg)


def _identity_decorator(fn=None, **kwargs):
    return fn if fn is not None else (lambda f: f)


#: Absolute imports replaced while an official file runs: name -> module (built lazily).
STUBS: Dict[str, Callable[[], types.ModuleType]] = {
    'mmcv_custom': lambda: _stub('mmcv_custom', load_checkpoint=_no_checkpoint_loading),
    'mmcv.runner': lambda: _stub('mmcv.runner', load_checkpoint=_no_checkpoint_loading),
    'mmseg.utils': lambda: _stub('mmseg.utils', get_root_logger=lambda *a, **k:
                                 logging.getLogger('official')),
    'mmseg.models.builder': lambda: _stub('mmseg.models.builder',
                                          BACKBONES=_Registry('backbone')),
    'torch._six': lambda: _stub('torch._six', container_abcs=collections.abc),
    'timm.models.registry': lambda: _stub('timm.models.registry',
                                          register_model=_identity_decorator),
}
#: Relative imports (``from ..builder import``, ``from .registry import``) -> module.
RELATIVE_STUBS: Dict[str, Callable[[], types.ModuleType]] = {
    'builder': lambda: _stub('builder', BACKBONES=_Registry('backbone')),
    'registry': lambda: _stub('registry', register_model=_identity_decorator),
}


def _mmcv_cnn_fallback() -> Optional[types.ModuleType]:
    try:
        from mmcv.cnn import build_norm_layer  # noqa: F401
        return None
    except Exception:  # mmcv absent or broken: the one function MPViT needs
        return _stub('mmcv.cnn', build_norm_layer=_build_norm_layer)


def _official_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level > 0:
        if name in RELATIVE_STUBS:
            return RELATIVE_STUBS[name]()
        raise ImportError(f'official file: relative import {"." * level}{name} has no stand-in')
    if name in STUBS:
        if not fromlist:
            raise ImportError(f'official file: "import {name}" (stubbed only for "from ... import")')
        return STUBS[name]()
    if name == 'mmcv.cnn' and fromlist:
        fallback = _mmcv_cnn_fallback()
        if fallback is not None:
            return fallback
    return builtins.__import__(name, globals, locals, fromlist, level)


_LOADED: Dict[str, types.ModuleType] = {}


def load_official_module(path: Union[str, Path]) -> types.ModuleType:
    """Execute one official model file as a module (cached by path), with :data:`STUBS` for the
    imports that are not installed. The module is not registered in ``sys.modules``."""
    path = Path(path).resolve()
    key = str(path)
    if key in _LOADED:
        return _LOADED[key]
    module = types.ModuleType(f'mmvit_official_{path.stem}')
    module.__file__ = key
    own_builtins = dict(vars(builtins))
    own_builtins['__import__'] = _official_import
    module.__dict__['__builtins__'] = own_builtins
    code = compile(path.read_text(), key, 'exec')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # timm.models.layers' deprecation notice, numpy aliases
        exec(code, module.__dict__)
    _LOADED[key] = module
    return module


def official_file(family: str, repo: Union[str, Path]) -> Path:
    """The official model file of ``family`` in the clone ``repo``.

    Raises:
        FileNotFoundError: none of :data:`OFFICIAL_FILES` is there (the message says why a
            classification-only clone, microsoft/Swin-Transformer, cannot be used).
    """
    family = family_of(family)
    repo = Path(repo)
    for rel in OFFICIAL_FILES[family]:
        if (repo / rel).is_file():
            return repo / rel
    hint = ''
    if family == 'swin' and (repo / 'models/swin_transformer.py').is_file():
        hint = ('; this is microsoft/Swin-Transformer, whose classifier fixes its input resolution '
                'when built and cannot take odd sizes: clone SwinTransformer/Swin-Transformer-'
                'Semantic-Segmentation (or -Object-Detection) for the dense backbone')
    raise FileNotFoundError(f'{family}: none of {list(OFFICIAL_FILES[family])} in {repo}{hint}')


def repo_commit(repo: Union[str, Path]) -> Optional[str]:
    """The clone's ``HEAD`` commit (``git rev-parse``), or the contents of a ``COMMIT`` file
    beside an exported tree, or ``None``."""
    repo = Path(repo)
    try:
        out = subprocess.run(['git', '-C', str(repo), 'rev-parse', 'HEAD'], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and re.fullmatch(r'[0-9a-f]{40}', out.stdout.strip()):
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    marker = repo / 'COMMIT'
    return marker.read_text().strip() if marker.is_file() else None


# --- building both modules ----------------------------------------------------------------------
class CvTStages(nn.Module):
    """The official CvT's stages (under their own names ``stage{i}``), returning each stage's
    ``(B, C, H, W)`` map: ``forward`` is ``ConvolutionalVisionTransformer.forward_features``
    without the final norm and pooling."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.num_stages = model.num_stages
        for i in range(self.num_stages):
            self.add_module(f'stage{i}', getattr(model, f'stage{i}'))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for i in range(self.num_stages):
            x, _ = getattr(self, f'stage{i}')(x)
            outs.append(x)
        return tuple(outs)


class NotComparable(ValueError):
    """The official dense module cannot build this arch as we do (the reason is the message)."""


def build_ours(family: str, arch: Union[str, dict], attn_impl: Optional[str] = None,
               **kwargs: Any) -> nn.Module:
    """Our backbone as it is compared: no drop path, CvT's three native levels."""
    family = family_of(family)
    kwargs.setdefault('drop_path_rate', 0.)
    if family == 'cvt':
        kwargs.setdefault('out_indices', (0, 1, 2))
    if attn_impl is not None:
        kwargs['attn_impl'] = attn_impl
    return backbone_class(family)(arch=arch, **kwargs)


def build_official(family: str, repo: Union[str, Path], arch: Union[str, dict],
                   ours: Optional[nn.Module] = None, mlp_ratio: float = 4.) -> nn.Module:
    """The official dense backbone of ``family`` matching our ``arch`` (drop path 0), built from
    the clone ``repo``. ``ours`` (optional) supplies the settings beyond the arch (CSWin's split
    sizes, Swin's window); ``mlp_ratio`` is ours (Swin, CSWin, CvT; MPViT's is in the arch).
    Raises :class:`NotComparable` where the official module cannot."""
    family = family_of(family)
    cls = backbone_class(family)
    spec = cls.resolve_arch(arch)
    module = load_official_module(official_file(family, repo))
    if family == 'swin':
        model = module.SwinTransformer(
            embed_dim=spec['embed_dims'], depths=list(spec['depths']),
            num_heads=list(spec['num_heads']), window_size=getattr(ours, 'window_size', 7),
            mlp_ratio=mlp_ratio, drop_path_rate=0., out_indices=(0, 1, 2, 3))
        model.init_weights()
    elif family == 'cswin':
        heads = list(spec['num_heads'])
        if any(b != 2 * a for a, b in zip(heads, heads[1:])):
            raise NotComparable(
                f'CSWin heads {heads}: the official segmentation backbone widens each stage by '
                'heads[i+1] // heads[i] (ours and the classifier by 2), so it builds another model')
        model = module.CSWin(embed_dim=spec['embed_dims'], depth=list(spec['depths']),
                             num_heads=heads,
                             split_size=list(getattr(ours, 'split_size', (1, 2, 7, 7))),
                             mlp_ratio=mlp_ratio, qkv_bias=True, drop_path_rate=0.)
        model.init_weights()
    elif family == 'cvt':
        from functools import partial
        dims, heads, depths = (list(spec[k][:3]) for k in ('embed_dims', 'num_heads', 'depths'))
        cfg = dict(NUM_STAGES=3, PATCH_SIZE=[7, 3, 3], PATCH_STRIDE=[4, 2, 2],
                   PATCH_PADDING=[2, 1, 1], DIM_EMBED=dims, NUM_HEADS=heads, DEPTH=depths,
                   MLP_RATIO=[float(mlp_ratio)] * 3, ATTN_DROP_RATE=[0.] * 3, DROP_RATE=[0.] * 3,
                   DROP_PATH_RATE=[0.] * 3, QKV_BIAS=[True] * 3, CLS_TOKEN=[False, False, True],
                   POS_EMBED=[False] * 3, QKV_PROJ_METHOD=['dw_bn'] * 3, KERNEL_QKV=[3] * 3,
                   PADDING_KV=[1] * 3, STRIDE_KV=[2] * 3, PADDING_Q=[1] * 3, STRIDE_Q=[1] * 3)
        # the official build (lib/models/cls_cvt.py get_cls_model): QuickGELU, LayerNorm eps 1e-5
        model = CvTStages(module.ConvolutionalVisionTransformer(
            in_chans=3, num_classes=1000, act_layer=module.QuickGELU,
            norm_layer=partial(module.LayerNorm, eps=1e-5), init='trunc_norm', spec=cfg))
    else:
        model = module.MPViT(num_stages=4, num_path=list(spec['num_paths']),
                             num_layers=list(spec['num_layers']),
                             embed_dims=list(spec['embed_dims']),
                             mlp_ratios=list(spec['mlp_ratios']),
                             num_heads=list(spec['num_heads']), drop_path_rate=0.,
                             norm_eval=False)
        model.init_weights()
    return model


def randomize(module: nn.Module, seed: int = 0, scale: float = 0.5) -> nn.Module:
    """Perturb every parameter and BatchNorm statistic, so that no weight is at its initial value
    (biases non-zero, norms not unit), at the scale of a trained network: weights (2-D and up)
    ``+ N(0, (scale / sqrt(fan_in))²)``, vectors (biases, norms) ``+ N(0, (scale / 5)²)``; BN running
    means ``N(0, 0.3²)``, variances ``U(0.5, 2)``; eval mode. (Perturbations of a fixed size, e.g.
    0.2 on every weight, make activations grow layer by layer and the attention saturate: the
    gradients then turn chaotic, fp32 rounding differences grow to 1e-3 between two exact
    implementations, and the comparison says nothing.)"""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            if param.dim() >= 2:
                std = scale / math.sqrt(max(1, param[0].numel()))
            else:
                std = scale / 5
            param.add_(torch.randn(param.shape, generator=gen) * std)
        for m in module.modules():
            if isinstance(m, _BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 1.5 + 0.5)
    return module.eval()


#: Official state-dict keys that are derived buffers, not weights (rebuilt by the module).
_DERIVED = re.compile(r'(relative_position_index|attn_mask|atten_mask_matrix)$')


def copy_into_official(family: str, ours: nn.Module, official: nn.Module) -> None:
    """Load our weights into the official module. Every official weight must come from ours (only
    derived buffers are left) and every one of ours must land.

    Raises:
        RuntimeError: a key of either side without its counterpart, or a shape mismatch.
    """
    state = to_official_state_dict(ours.state_dict(), family)
    if family_of(family) == 'cvt':  # our extra stage has no official counterpart
        state = {k: v for k, v in state.items() if not k.startswith('stage3.')}
    target = official.state_dict()
    missing = [k for k in target if k not in state and not _DERIVED.search(k)]
    unexpected = [k for k in state if k not in target]
    mismatched = [k for k in state if k in target and state[k].shape != target[k].shape]
    if missing or unexpected or mismatched:
        raise RuntimeError(f'{family}: our weights do not fill the official module: missing '
                           f'{missing[:5]}, unexpected {unexpected[:5]}, shapes {mismatched[:5]}')
    official.load_state_dict(state, strict=False)


def official_to(official: nn.Module, dtype: torch.dtype) -> nn.Module:
    """The official module in ``dtype``. CvT's ``LayerNorm`` subclass computes in float32 whatever
    its input (a provision for fp16); in float64 it runs as torch's ``LayerNorm`` (in float32 the
    two are the same)."""
    official.to(dtype)
    if dtype == torch.float64:
        for m in official.modules():
            if isinstance(m, nn.LayerNorm) and type(m) is not nn.LayerNorm:
                m.forward = types.MethodType(nn.LayerNorm.forward, m)
    return official


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def make_pair(family: str, repo: Union[str, Path], arch: Union[str, dict], seed: int = 0,
              attn_impl: Optional[str] = None, scale: float = 0.5) -> Tuple[nn.Module, nn.Module]:
    """``(ours, official)``: ours randomised (:func:`randomize` at ``scale``), the official module
    holding the same weights; both fp32, eval mode."""
    torch.manual_seed(seed)
    ours = randomize(build_ours(family, arch, attn_impl=attn_impl), seed, scale)
    official = build_official(family, repo, arch, ours)
    official.eval()  # (not chained: the official train() overrides return None)
    copy_into_official(family, ours, official)
    return ours, official


# --- one forward + backward ---------------------------------------------------------------------
def projection_weights(shapes: Sequence[torch.Size], seed: int) -> List[torch.Tensor]:
    """The fixed random projection of each level (``loss = Σ_l <feature_l, w_l>``), ``1 + N(0, 1)``
    per element. (A zero-mean projection makes every bias gradient a sum of cancelling terms over
    the tokens: the relative error of such a sum grows with the square root of their number, to
    5e-5 at 333×517 between two exact fp32 implementations; a mean of 1 keeps it at rounding.)"""
    gen = torch.Generator().manual_seed(seed)
    return [1 + torch.randn(shape, generator=gen) for shape in shapes]


def run_with_grads(model: nn.Module, x: torch.Tensor,
                   weights: Union[None, Sequence[torch.Tensor], Callable[[List[torch.Size]],
                                                                         List[torch.Tensor]]],
                   seed: int = 1) -> Tuple[List[torch.Tensor], torch.Tensor, Dict[str, torch.Tensor],
                                           List[torch.Tensor]]:
    """Features, input gradient and parameter gradients (by the module's own parameter names) of
    ``Σ_l <feature_l, w_l>``: ``weights`` given, or made from the levels' shapes by a callable, or
    (``None``) :func:`projection_weights` of ``seed``."""
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    outs = list(model(x))
    if weights is None:
        weights = projection_weights([o.shape for o in outs], seed)
    elif callable(weights):
        weights = weights([o.shape for o in outs])
    loss = sum((o * w).sum() for o, w in zip(outs, weights))
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()
             if p.grad is not None}
    return [o.detach() for o in outs], x.grad.detach(), grads, list(weights)


def official_grads_as_ours(family: str, grads: StateDict) -> StateDict:
    """The official module's parameter gradients under our names (the checkpoint converter; for
    MPViT a shared encoding's gradient is that of the one shared parameter)."""
    return checkpoint_converter(family)(dict(grads))


#: The recorded check's tolerance: ours (fp32) within ``max(1e-5, NOISE_FACTOR × e)`` of the
#: official function, ``e`` the largest error of the official code's own fp32 run against it in
#: that case and kind (features, input gradient, parameter gradients): no implementation can be
#: asked to come closer than the official code itself comes, by more than rounding's spread.
RTOL, NOISE_FACTOR = 1e-5, 3.


def tolerance(official_fp32_errors: Iterable[float]) -> float:
    """``max(RTOL, NOISE_FACTOR × max(official_fp32_errors))``."""
    return max([RTOL] + [NOISE_FACTOR * e for e in official_fp32_errors])


#: A reference parameter gradient below this fraction of the module's largest is zero in exact
#: arithmetic (rounding noise, e.g. CvT's key biases ``attn.proj_k.bias`` / ``conv_proj_k.bn.bias``:
#: the softmax over keys ignores a constant added to every key; ~1e-10 of the largest).
ZERO_GRAD = 1e-7
#: ... and ours must be as small (a real gradient there would be orders of magnitude above).
ZERO_GRAD_OURS = 1e-6


def gradient_errors(ours: Dict[str, torch.Tensor], theirs: Dict[str, torch.Tensor]) -> dict:
    """Parameter gradients against the reference: ``worst`` / ``worst_key``, the largest per-tensor
    relative error (``max|a - b| / max|b|``) over the tensors whose reference gradient is not
    zero in exact arithmetic; ``zero_keys`` the others (:data:`ZERO_GRAD`) and ``zero_worst`` the
    largest ``max|a|`` of ours there, as a fraction of the largest reference gradient (must stay
    below :data:`ZERO_GRAD_OURS`).

    Raises:
        RuntimeError: the two sides hold gradients of different parameters.
    """
    if ours.keys() != theirs.keys():
        raise RuntimeError(f'gradients of different parameters: only ours '
                           f'{sorted(set(ours) - set(theirs))[:5]}, only official '
                           f'{sorted(set(theirs) - set(ours))[:5]}')
    largest = max((t.abs().max().item() for t in theirs.values() if t.numel()), default=0.)
    out = dict(worst=0., worst_key=None, zero_keys=[], zero_worst=0.)
    for key in ours:
        if theirs[key].abs().max().item() <= ZERO_GRAD * largest:
            out['zero_keys'].append(key)
            out['zero_worst'] = max(out['zero_worst'], ours[key].abs().max().item() / largest)
            continue
        err = relative_error(ours[key], theirs[key])
        if err > out['worst'] or out['worst_key'] is None:
            out['worst'], out['worst_key'] = err, key
    return out


def compare(family: str, repo: Union[str, Path], arch: Union[str, dict],
            sizes: Iterable[Tuple[int, int]] = DEFAULT_SIZES,
            attn_impls: Optional[Sequence[Optional[str]]] = None, seed: int = 0,
            log: Optional[Callable[[str], None]] = None, dtype: torch.dtype = torch.float32,
            scale: float = 0.5, official_noise: bool = False) -> List[dict]:
    """Ours vs the official module for one family and arch, per attention implementation and size:
    parameter counts, the largest relative error over the feature levels, of the input gradient,
    and over every parameter gradient (the worst one named; :func:`gradient_errors`). One dict per
    (attn_impl, size); ``{'error': reason}`` where the official module cannot build the arch.
    ``dtype=torch.float64`` runs both in double precision: what is left there is a difference of
    the functions computed, free of fp32 rounding and of the conditioning that amplifies it.
    ``official_noise``: also run the official module in float64 and report how far its own run in
    ``dtype`` is from that (``official_*`` fields): the error that rounding alone gives exact code,
    the yardstick for ours where gradients are ill-conditioned."""
    family = family_of(family)
    attn_impls = ATTN_IMPLS[family] if attn_impls is None else attn_impls
    base = dict(family=family, arch=arch if isinstance(arch, str) else 'custom')
    try:
        ours, official = make_pair(family, repo, arch, seed, scale=scale)
    except NotComparable as exc:
        row = dict(base, error=str(exc))
        if log:
            log(format_row(row))
        return [row]
    counts = dict(params_ours=count_parameters(ours), params_official=count_parameters(official))
    if family == 'cvt':  # our extra stage is not in the official model
        counts['params_ours_native'] = sum(p.numel() for n, p in ours.named_parameters()
                                           if not n.startswith('stages.3.'))
    variants = {}
    for impl in attn_impls:  # the same weights under each attention implementation
        variants[impl] = build_ours(family, arch, attn_impl=impl).eval() if impl else ours
        variants[impl].load_state_dict(ours.state_dict())
        variants[impl].to(dtype)
    official_to(official, dtype)
    results = []
    for size in sizes:
        gen = torch.Generator().manual_seed(seed + 17)
        x = torch.randn(1, 3, *size, generator=gen).to(dtype)
        ref_outs, ref_gx, ref_grads, weights = run_with_grads(official, x, None, seed + 1)
        ref_grads = official_grads_as_ours(family, ref_grads)
        noise = {}
        if official_noise:
            exact = official_to(copy.deepcopy(official), torch.float64)
            outs64, gx64, grads64, _ = run_with_grads(exact, x.double(),
                                                      [w.double() for w in weights])
            grads64 = official_grads_as_ours(family, grads64)
            del exact
            noise = dict(official_features=max(relative_error(a, b)
                                               for a, b in zip(ref_outs, outs64)),
                         official_input_grad=relative_error(ref_gx, gx64),
                         official_param_grads=gradient_errors(ref_grads, grads64)['worst'])
        for impl, model in variants.items():
            outs, gx, grads, _ = run_with_grads(model, x, weights)
            if len(outs) != len(ref_outs):
                raise RuntimeError(f'{family}: {len(outs)} levels vs official {len(ref_outs)}')
            feat = max(relative_error(a, b) for a, b in zip(outs, ref_outs))
            g = gradient_errors(grads, ref_grads)
            row = dict(base, **counts, attn_impl=impl, size=list(size), dtype=str(dtype)[6:],
                       scale=scale, features=feat,
                       input_grad=relative_error(gx, ref_gx), param_grads=g['worst'],
                       worst_param=g['worst_key'], num_param_grads=len(grads),
                       zero_grads=g['zero_keys'], zero_grads_ours=g['zero_worst'], **noise)
            results.append(row)
            if log:
                log(format_row(row))
    return results


def format_row(row: dict) -> str:
    if 'error' in row:
        return f"{row['family']:6s} {row['arch']:7s} not comparable: {row['error']}"
    size = 'x'.join(map(str, row['size']))
    params = f"params ours {row['params_ours']:,} / official {row['params_official']:,}"
    if 'params_ours_native' in row:
        params += f" (ours without stages.3: {row['params_ours_native']:,})"
    return (f"{row['family']:6s} {row['arch']:7s} {str(row['attn_impl']):8s} {size:8s} "
            f"{row['dtype']:7s} "
            f"features {row['features']:.1e}  input grad {row['input_grad']:.1e}  "
            f"param grads {row['param_grads']:.1e} ({row['worst_param']})  {params}"
            + (f"  [official {row['dtype']} vs its float64: features "
               f"{row['official_features']:.1e}, input grad {row['official_input_grad']:.1e}, "
               f"param grads {row['official_param_grads']:.1e}]" if 'official_features' in row
               else '')
            + (f"  [{len(row['zero_grads'])} zero in exact arithmetic: ours "
               f"{row['zero_grads_ours']:.0e} of the largest]" if row['zero_grads'] else ''))


def run_comparisons(repos: Dict[str, Union[str, Path]], sizes: Sequence[Tuple[int, int]],
                    archs: Optional[Sequence[str]] = None, json_out: Optional[str] = None,
                    record: Optional[str] = None, seed: int = 0,
                    dtypes: Sequence[torch.dtype] = (torch.float32, ), scale: float = 0.5,
                    official_noise: bool = False,
                    log: Callable[[str], None] = print) -> List[dict]:
    """What ``tools/compare_official.py`` does: per family with a clone and per arch (``archs``
    filters :data:`FULL_ARCHS`; names that a family lacks are skipped), print and collect
    :func:`compare`'s rows; write them (with the clones' commits) to ``json_out``; record the
    suite's reference to ``record``. ``archs=()`` compares nothing (recording only)."""
    rows: List[dict] = []
    commits = {family: repo_commit(repo) for family, repo in repos.items()}
    for family, repo in repos.items():
        log(f'# {family}: {official_file(family, repo)} (commit {commits[family]})')
        for arch in FULL_ARCHS[family_of(family)]:
            if archs is not None and arch not in archs:
                continue
            for dtype in dtypes:
                rows.extend(compare(family, repo, arch, sizes, seed=seed, log=log, dtype=dtype,
                                    scale=scale, official_noise=official_noise))
    if json_out:
        Path(json_out).write_text(json.dumps(dict(commits=commits, sizes=[list(s) for s in sizes],
                                                  torch=torch.__version__, rows=rows), indent=1))
    if record:
        record_reference(repos, record, log=log)
    return rows


# --- the recorded reference of the test suite ---------------------------------------------------
#: Per family: a small arch (one or two blocks per stage) exercising what can differ at odd sizes:
#: Swin's shifted windows (two blocks per stage) and padding; CSWin's stripe splits (1, 2, 7) and
#: the global last stage; CvT's cls token (stage 2); MPViT's 2 / 3 paths and shared encodings.
REFERENCE_ARCHS: Dict[str, dict] = {
    'swin': dict(embed_dims=4, depths=(2, 2, 2, 1), num_heads=(1, 2, 2, 4)),
    'cswin': dict(embed_dims=4, depths=(1, 1, 1, 1), num_heads=(2, 4, 8, 16)),
    'cvt': dict(embed_dims=(4, 8, 16, 4), num_heads=(1, 2, 2, 1), depths=(1, 1, 2, 0)),
    'mpvit': dict(embed_dims=(8, 8, 8, 8), num_layers=(1, 2, 1, 1), num_heads=(8, 8, 8, 8),
                  mlp_ratios=(1, 1, 1, 1), num_paths=(2, 3, 3, 2)),
}
#: The weights' perturbation (:func:`randomize`) of the recorded archs: MPViT's gradients are
#: chaotic at 0.5 (Hardswish kinks, factorised attention), fp32 rounding grows to 1e-5 there.
REFERENCE_SCALE: Dict[str, float] = {'swin': 0.5, 'cswin': 0.5, 'cvt': 0.5, 'mpvit': 0.25}
#: Our constructor settings of the recorded archs beyond ``arch`` (narrow MLPs keep the file small).
REFERENCE_KWARGS: Dict[str, dict] = {'swin': dict(mlp_ratio=1.), 'cswin': dict(mlp_ratio=1.),
                                     'cvt': dict(mlp_ratio=1.), 'mpvit': {}}
REFERENCE_SIZES = DEFAULT_SIZES
#: Samples per spatial dimension kept of the big tensors (plus the last rows / columns, where the
#: padding is), and channels kept, so that the file stays small.
SAMPLE_POINTS, SAMPLE_BAND, SAMPLE_CHANNELS = 12, 3, 8


def sample_index(n: int, points: int = SAMPLE_POINTS, band: int = SAMPLE_BAND) -> torch.Tensor:
    """Indices ``0, s, 2s, …`` (about ``points`` of them) and the last ``band`` of ``range(n)``."""
    step = max(1, math.ceil(n / points))
    return torch.tensor(sorted(set(range(0, n, step)) | set(range(max(0, n - band), n))))


def sample(t: torch.Tensor) -> torch.Tensor:
    """The recorded part of a ``(B, C, H, W)`` tensor: :func:`sample_index` of the channels
    (at most :data:`SAMPLE_CHANNELS`, first and last included), rows and columns."""
    t = t.detach()
    ch = sample_index(t.shape[1], SAMPLE_CHANNELS - 1, 1)
    return t.index_select(1, ch).index_select(2, sample_index(t.shape[2])) \
            .index_select(3, sample_index(t.shape[3])).contiguous()


def reference_input(base: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """The recorded input of ``size`` from its stored low-resolution ``base`` (B, 3, h, w): bilinear
    upsampling plus a fixed high-frequency pattern (float64), so that neighbouring pixels differ
    and the file holds ``base`` only. The record also holds the input's :func:`sample`, which the
    test checks, so a machine that generated another input would be noticed."""
    H, W = size
    up = F.interpolate(base.double(), size=(H, W), mode='bilinear', align_corners=False)
    r = torch.arange(H, dtype=torch.float64).view(1, 1, H, 1)
    c = torch.arange(W, dtype=torch.float64).view(1, 1, 1, W)
    ch = torch.arange(base.shape[1], dtype=torch.float64).view(1, -1, 1, 1)
    pattern = torch.sin(0.91 * r + 1.73 * c + 2.1 * ch) * torch.cos(0.37 * r - 0.53 * c + ch)
    return (up + 0.5 * pattern).float()


def reference_weights(shapes: Sequence[torch.Size], offset: int = 0) -> List[torch.Tensor]:
    """The recorded loss's projections, one per level, without a random generator: ``1 + √3·(2u - 1)``
    (mean 1, variance 1, as :func:`projection_weights`) with ``u`` the additive-recurrence sequence
    ``frac(0.7548776662…·i + 0.5698402909…·(level + offset))`` over the flat index ``i`` (exact
    float64 arithmetic, the same on every machine), so that the file need not hold them."""
    out = []
    for level, shape in enumerate(shapes):
        i = torch.arange(math.prod(shape), dtype=torch.float64)
        u = torch.frac(0.7548776662466927 * i + 0.5698402909980532 * (level + offset))
        out.append((1 + math.sqrt(3) * (2 * u - 1)).float().reshape(shape))
    return out


def record_reference(repos: Dict[str, Union[str, Path]], path: Union[str, Path], seed: int = 0,
                     log: Callable[[str], None] = print) -> dict:
    """Write the suite's recorded reference (gzip of ``torch.save``) to ``path``:

    ``{'inputs': [{'size', 'base' (fp32; :func:`reference_input`), 'sample'}], 'commits',
    'families': {family: {'arch', 'kwargs', 'state_dict' (fp16, our keys), 'cases': [{'features'
    (:func:`sample` of each level), 'input_grad' (sampled), 'param_grads' (every parameter, our
    names)}]}}}``, case ``k`` of the input ``k``, its loss projecting with
    :func:`reference_weights` ``(shapes, k)``;
    the official module run in float64 (its exact function: the weights are rounded to fp16 first
    and the fp32 input is exact in float64, so that ours loaded from the record computes the very
    same function), stored in fp32. Against these, ours in fp32 carries its own rounding only; two
    fp32 runs of exact implementations differ by the rounding of both, which the gradients of
    these small random networks amplify to 1e-5 (MPViT 3e-5): a 1e-5 check of fp32 against fp32
    would fail for exact code.
    """
    import gzip
    import io
    inputs = []
    for k, size in enumerate(REFERENCE_SIZES):  # one input per size, shared by the families
        gen = torch.Generator().manual_seed(seed + 100 + k)
        base = torch.randn(1, 3, math.ceil(size[0] / 16) + 1, math.ceil(size[1] / 16) + 1,
                           generator=gen)
        inputs.append(dict(size=list(size), base=base, sample=sample(reference_input(base, size))))
    record = dict(inputs=inputs, commits={f: repo_commit(r) for f, r in repos.items()},
                  families={})
    for family, repo in repos.items():
        family = family_of(family)
        arch = REFERENCE_ARCHS[family]
        torch.manual_seed(seed)
        kwargs = REFERENCE_KWARGS[family]
        ours = randomize(build_ours(family, arch, **kwargs), seed, REFERENCE_SCALE[family])
        with torch.no_grad():  # fp16-representable weights and statistics
            for t in ours.state_dict().values():
                if t.is_floating_point():
                    t.copy_(t.half().float())
        official = build_official(family, repo, arch, ours, kwargs.get('mlp_ratio', 4.))
        official.eval()
        copy_into_official(family, ours, official)
        official32 = copy.deepcopy(official)
        official_to(official, torch.float64)  # its function, free of its own fp32 rounding
        cases = []
        for k, case in enumerate(inputs):
            x = reference_input(case['base'], tuple(case['size']))
            weights = lambda shapes: reference_weights(shapes, k)  # noqa: E731
            outs, gx, grads, _ = run_with_grads(
                official, x.double(), lambda shapes: [w.double() for w in weights(shapes)])
            grads = official_grads_as_ours(family, grads)
            # the official code's own fp32 run: how far rounding takes exact code from the function
            outs32, gx32, grads32, _ = run_with_grads(official32, x, weights)
            grads32 = official_grads_as_ours(family, grads32)
            noise = dict(features=[relative_error(sample(a), sample(b))
                                   for a, b in zip(outs32, outs)],
                         input_grad=relative_error(sample(gx32), sample(gx)),
                         param_grads={key: relative_error(grads32[key], grads[key])
                                      for key in grads})
            for key in gradient_errors(grads32, grads)['zero_keys']:
                noise['param_grads'][key] = 0.  # zero in exact arithmetic: checked apart
            cases.append(dict(features=[sample(o).float() for o in outs],
                              input_grad=sample(gx).float(),
                              param_grads={key: v.float() for key, v in grads.items()},
                              official_fp32_error=noise))
        record['families'][family] = dict(
            arch=arch, kwargs=dict(arch=arch, drop_path_rate=0., **kwargs,
                                   **({'out_indices': (0, 1, 2)} if family == 'cvt' else {})),
            state_dict={k: v.half() if v.is_floating_point() else v
                        for k, v in ours.state_dict().items()},
            cases=cases)
        log(f'recorded {family}: {count_parameters(ours):,} parameters')
    buffer = io.BytesIO()
    torch.save(record, buffer)
    with gzip.open(path, 'wb', compresslevel=9) as f:
        f.write(buffer.getvalue())
    log(f'wrote {path} ({Path(path).stat().st_size:,} bytes)')
    return record
