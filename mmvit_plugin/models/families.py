"""The four backbone families by name, and backbones built from a spec string.

A family is what the tools call a backbone on their command lines (``swin``, ``cswin``, ``cvt``,
``mpvit``); each has one module, ``mmvit_plugin.models.backbones.<family>``, holding its class
(registered in ``MODELS`` under :data:`FAMILIES`' value), ``convert_<family>_checkpoint`` and
``<family>_checkpoint_layout``. A spec is ``family:arch``, e.g. ``swin:tiny`` or ``cvt:13``.

Example::

    build_backbone('cswin:tiny')                     # CSWin(arch='tiny', drop_path_rate=0.)
    build_backbone('CvT', arch=dict(...), with_cp=True)
    checkpoint_converter('swin')(state_dict, window_size=7)
"""
import importlib
from types import ModuleType
from typing import Any, Callable, Dict, Optional, Tuple

import torch.nn as nn

#: family -> the backbone class (and its registry name).
FAMILIES: Dict[str, str] = {'swin': 'Swin', 'cswin': 'CSWin', 'cvt': 'CvT', 'mpvit': 'MPViT'}
_BY_CLASS = {name: family for family, name in FAMILIES.items()}


def family_of(name: str) -> str:
    """The family of ``name``: a family (``'swin'``) or a class name (``'Swin'``)."""
    if name in FAMILIES:
        return name
    if name in _BY_CLASS:
        return _BY_CLASS[name]
    raise ValueError(f'unknown backbone family {name!r}; one of {sorted(FAMILIES)}')


def family_module(family: str) -> ModuleType:
    """``mmvit_plugin.models.backbones.<family>``."""
    return importlib.import_module(f'mmvit_plugin.models.backbones.{family_of(family)}')


def backbone_class(name: str) -> type:
    """The backbone class of a family or class name."""
    family = family_of(name)
    return getattr(family_module(family), FAMILIES[family])


def checkpoint_converter(family: str) -> Callable:
    """``convert_<family>_checkpoint``: any supported layout to ours."""
    family = family_of(family)
    return getattr(family_module(family), f'convert_{family}_checkpoint')


def checkpoint_layout(family: str) -> Callable:
    """``<family>_checkpoint_layout``: the name of a state dict's layout."""
    family = family_of(family)
    return getattr(family_module(family), f'{family}_checkpoint_layout')


def parse_spec(spec: str) -> Tuple[str, str]:
    """``(family, arch)`` of ``'family:arch'``; ValueError naming the spec otherwise."""
    family, _, arch = spec.partition(':')
    if family not in FAMILIES or not arch:
        raise ValueError(f'unknown model {spec!r}; use family:arch with a family of '
                         f'{sorted(FAMILIES)}, e.g. swin:tiny, cvt:13')
    return family, arch


def build_backbone(spec: str, arch: Optional[Any] = None, **kwargs: Any) -> nn.Module:
    """A backbone from ``'family:arch'``, or from a family or class name and ``arch`` (a name or a
    dict); drop path off unless ``drop_path_rate`` is given (benchmarks and checks compare runs)."""
    if arch is None:
        family, arch = parse_spec(spec)
    else:
        family = family_of(spec)
    kwargs.setdefault('drop_path_rate', 0.)
    return backbone_class(family)(arch=arch, **kwargs)
