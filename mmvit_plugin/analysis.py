"""FLOP counting that understands ``F.scaled_dot_product_attention``.

mmengine's :class:`~mmengine.analysis.FlopAnalyzer` (fvcore's jit tracer) has no handle for the
fused attention op and would silently count it as zero. Counts are multiply-accumulates, as
fvcore/mmengine report them (the papers' "FLOPs").

Example::

    total, by_op = count_flops(backbone.eval(), (torch.randn(1, 3, 224, 224), ))
    report = analyze_flops(segmentor, (batch, ))   # one trace: total, per child, per operator
    report.by_child['backbone'], report.uncounted  # e.g. {'aten::softmax': 12, ...}
"""
from dataclasses import dataclass
from math import prod
from typing import Any, Dict, List, Tuple

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


@dataclass
class FlopReport:
    """Multiply-accumulates of one traced call of a module.

    ``by_child`` has every direct child of the traced module (zero for those that did not run);
    ops run in the module's own ``forward`` body count in ``total`` only. ``uncounted`` is how
    often each op without a handle ran (mmengine counts those as zero: element-wise ops such as
    add, softmax, GELU, and shape ops it does not list as free).
    """
    total: int
    by_child: Dict[str, int]
    by_operator: Dict[str, int]
    uncounted: Dict[str, int]


def analyze_flops(model: nn.Module, inputs: Tuple[Any, ...]) -> FlopReport:
    """Trace ``model(*inputs)`` once and count its multiply-accumulates."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    children = {name for name, _ in model.named_children()}
    by_module = analyzer.by_module()
    return FlopReport(total=analyzer.total(),
                      by_child={name: by_module[name] for name in sorted(children)},
                      by_operator=dict(analyzer.by_operator()),
                      uncounted=dict(analyzer.unsupported_ops()))


def count_flops(model: nn.Module, inputs: Tuple[torch.Tensor, ...]) -> Tuple[int, dict]:
    """Total multiply-accumulates of ``model(*inputs)`` and the count per operator."""
    report = analyze_flops(model, inputs)
    return report.total, report.by_operator


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
