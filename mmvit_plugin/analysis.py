"""FLOP counting that understands ``F.scaled_dot_product_attention``.

mmengine's :class:`~mmengine.analysis.FlopAnalyzer` (fvcore's jit tracer) has no handle for the
fused attention op and would silently count it as zero. Counts are multiply-accumulates, as
fvcore/mmengine report them (the papers' "FLOPs").
"""
from math import prod
from typing import Any, List, Tuple

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``q @ kᵀ`` and ``attn @ v``: ``batch · L · S · (E + Ev)`` multiply-accumulates."""
    q, k, v = (get_shape(val) for val in inputs[:3])
    *batch, length, embed = q
    source = k[-2]
    return prod(batch) * length * source * (embed + v[-1])


def count_flops(model: nn.Module, inputs: Tuple[torch.Tensor, ...]) -> Tuple[int, dict]:
    """Total multiply-accumulates of ``model(*inputs)`` and the count per operator."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analyzer.total(), dict(analyzer.by_operator())


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
