"""Check, when a model is built, that the neck or heads expect the channels our backbone returns.

A config whose ``in_channels`` disagree with the backbone otherwise fails at the first forward
pass, deep in a convolution ("expected input[2, 64, 32, 32] to have 96 channels"), without saying
which config entry is wrong. :func:`check_feature_channels` names it and the value to put there.
"""
from typing import List, Sequence, Union

import torch.nn as nn

from .backbones.base import PyramidBackbone


class ChannelMismatchError(ValueError):
    """A neck or head is configured for other channels than the backbone returns."""


def check_feature_channels(model: nn.Module) -> None:
    """Raise :class:`ChannelMismatchError` if ``model``'s neck or heads disagree with its backbone.

    Understands mmdet/mmseg models with a ``backbone`` of this package and either a ``neck`` with
    an ``in_channels`` list (FPN and the like), or mmseg decode/auxiliary heads with
    ``in_channels`` and ``in_index``. Models with other backbones, or with necks/heads that declare
    no ``in_channels``, are left alone.
    """
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, PyramidBackbone):
        return
    outputs = backbone.out_channels
    described = (f'{type(backbone).__name__} returns {len(outputs)} feature maps with channels '
                 f'{outputs} (out_indices={list(backbone.out_indices)})')

    neck = getattr(model, 'neck', None)
    if neck is not None:
        expected = getattr(neck, 'in_channels', None)
        if isinstance(expected, Sequence) and list(expected) != outputs:
            raise ChannelMismatchError(f'model.neck.in_channels={list(expected)}, but the '
                                       f'backbone {described}; set neck.in_channels={outputs}')
        return  # the heads read the neck's outputs

    for name in ('decode_head', 'auxiliary_head'):
        heads = getattr(model, name, None)
        if heads is None:
            continue
        if isinstance(heads, nn.ModuleList):
            for i, head in enumerate(heads):
                _check_head(f'model.{name}[{i}]', head, outputs, described)
        else:
            _check_head(f'model.{name}', heads, outputs, described)


def _check_head(name: str, head: nn.Module, outputs: List[int], described: str) -> None:
    in_channels = getattr(head, 'in_channels', None)
    in_index = getattr(head, 'in_index', None)
    if in_channels is None or in_index is None:
        return
    indices = [in_index] if isinstance(in_index, int) else list(in_index)
    wanted = [in_channels] if isinstance(in_channels, int) else list(in_channels)
    for index in indices:
        if not -len(outputs) <= index < len(outputs):
            raise ChannelMismatchError(f'{name}.in_index={_show(in_index)} selects feature map '
                                       f'{index}, but the backbone {described}')
    actual = [outputs[i] for i in indices]
    if isinstance(in_channels, int) and len(indices) > 1:
        actual = [sum(actual)]  # mmseg's input_transform='resize_concat' stores the sum
    if actual != wanted:
        hint = actual[0] if isinstance(in_channels, int) else actual
        raise ChannelMismatchError(f'{name}.in_channels={_show(in_channels)} with in_index='
                                   f'{_show(in_index)}, but the backbone {described}; set '
                                   f'in_channels={hint}')


def _show(value: Union[int, Sequence[int]]) -> str:
    return str(value if isinstance(value, int) else list(value))
