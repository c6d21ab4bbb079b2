"""FLOP counting that understands ``F.scaled_dot_product_attention``, ``torch.baddbmm`` and
``torch.einsum``, and counts the arithmetic a model defines rather than the zeros its fused
kernels multiply.

mmengine's :class:`~mmengine.analysis.FlopAnalyzer` (fvcore's jit tracer) has no handle for the
fused attention op nor for ``baddbmm`` and would silently count them as zero; its ``einsum``
count is rounded to 4 digits. Counts are multiply-accumulates, as fvcore/mmengine report them
(the papers' "FLOPs").

Structural zeros: MPViT's factorized attention runs the per-head ``kᵀv`` and ``q·(kᵀv)`` products
of heads narrower than 16 channels as one ``C × C`` product masked to its block diagonal, and its
convolutional relative position encoding runs the 3×3 / 5×5 / 7×7 depthwise kernels as one 7×7
kernel, zero-padded (both faster here than the per-head / per-group calls). The
multiply-accumulates with those zeros are taken out of every count (``FlopReport.structural_zeros``
says how many), so the figures are the model's arithmetic, as the official per-head and per-group
implementation counts it.

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
from mmengine.analysis import FlopAnalyzer, jit_handles
from mmengine.analysis.jit_handles import get_shape


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``q @ kᵀ`` and ``attn @ v``: ``batch · L · S · (E + Ev)`` multiply-accumulates."""
    q, k, v = (get_shape(val) for val in inputs[:3])
    *batch, length, embed = q
    source = k[-2]
    return prod(batch) * length * source * (embed + v[-1])


def baddbmm_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``input + batch1 @ batch2``: the product's ``batch · n · k · m`` (the sum is free)."""
    batch, rows, inner = get_shape(inputs[1])
    return batch * rows * inner * get_shape(inputs[2])[-1]


def einsum_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Two-operand ``einsum``: the product of every index's size (exact; mmengine's handle reads
    the count from numpy's printed path, rounded to 4 digits). Other einsums: mmengine's."""
    equation = inputs[0].toIValue().replace(' ', '')
    shapes = [get_shape(val) for val in inputs[1].node().inputs()]
    if len(shapes) != 2 or '...' in equation:
        return jit_handles.einsum_flop_jit(inputs, outputs)
    sizes = {}
    for letters, shape in zip(equation.split('->')[0].split(','), shapes):
        sizes.update(zip(letters, shape))
    return prod(sizes.values())


def structural_zero_macs(module: nn.Module, args: Tuple[Any, ...]) -> Dict[str, int]:
    """Multiply-accumulates by operator that one call of ``module`` spends on structural zeros of
    its fused kernels (see the module docstring); empty for modules without such kernels."""
    from ..models.backbones.mpvit import ConvRelPosEnc, FactorizedAttention
    if isinstance(module, FactorizedAttention) and module.block_diagonal:
        batch, tokens, channels = (int(d) for d in args[0].shape)  # ints also while tracing
        off_diagonal = channels - channels // module.num_heads  # per row of the C x C product
        zeros = batch * tokens * channels * off_diagonal
        return {'bmm': zeros, 'baddbmm': zeros}  # softmax(k)ᵀ v, then q (kᵀ v)
    if isinstance(module, ConvRelPosEnc) and hasattr(module, 'merged_kernel'):
        _, v, size = args
        padded = module.max_kernel**2
        per_pixel = sum(conv.out_channels * (padded - conv.kernel_size[0] * conv.kernel_size[1])
                        for conv in module.conv_list)
        return {'conv': int(v.shape[0]) * int(size[0]) * int(size[1]) * per_pixel}
    return {}


@dataclass
class FlopReport:
    """Multiply-accumulates of one traced call of a module.

    ``by_child`` has every direct child of the traced module (zero for those that did not run),
    ``by_module`` every module at any depth, by its qualified name; ops run in the module's own
    ``forward`` body count in ``total`` only. ``uncounted`` is how
    often each op without a handle ran (mmengine counts those as zero: element-wise ops such as
    add, softmax, GELU, and shape ops it does not list as free). All counts leave out the
    ``structural_zeros`` multiply-accumulates (:func:`structural_zero_macs`).
    """
    total: int
    by_child: Dict[str, int]
    by_module: Dict[str, int]
    by_operator: Dict[str, int]
    uncounted: Dict[str, int]
    structural_zeros: int = 0


def analyze_flops(model: nn.Module, inputs: Tuple[Any, ...]) -> FlopReport:
    """Trace ``model(*inputs)`` once and count its multiply-accumulates (structural zeros out)."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.set_op_handle('aten::baddbmm', baddbmm_flop_jit)
    analyzer.set_op_handle('aten::einsum', einsum_flop_jit)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    # Structural zeros by module and by operator. The tracer gives each op to the module whose
    # forward body runs it and to that module's parents by name (not to its callers); the zeros
    # are in the bodies of the modules structural_zero_macs knows.
    zero_by_module: Dict[str, int] = {}
    zero_by_operator: Dict[str, int] = {}

    def record(name: str, module: nn.Module, args: Tuple[Any, ...]) -> None:
        for op, macs in structural_zero_macs(module, args).items():
            zero_by_operator[op] = zero_by_operator.get(op, 0) + macs
            parts = name.split('.')
            for depth in range(len(parts) + 1):
                parent = '.'.join(parts[:depth])
                zero_by_module[parent] = zero_by_module.get(parent, 0) + macs

    hooks = [module.register_forward_pre_hook(
        lambda module, args, name=name: record(name, module, args))
             for name, module in model.named_modules() if name]
    try:
        by_module = dict(analyzer.by_module())  # the one trace runs here
    finally:
        for hook in hooks:
            hook.remove()
    by_operator = dict(analyzer.by_operator())
    for name, macs in zero_by_module.items():
        by_module[name] -= macs
    for op, macs in zero_by_operator.items():
        by_operator[op] -= macs
    children = {name for name, _ in model.named_children()}
    return FlopReport(total=analyzer.total() - zero_by_module.get('', 0),
                      by_child={name: by_module[name] for name in sorted(children)},
                      by_module=by_module, by_operator=by_operator,
                      uncounted=dict(analyzer.unsupported_ops()),
                      structural_zeros=zero_by_module.get('', 0))


def count_flops(model: nn.Module, inputs: Tuple[torch.Tensor, ...]) -> Tuple[int, dict]:
    """Total multiply-accumulates of ``model(*inputs)`` and the count per operator."""
    report = analyze_flops(model, inputs)
    return report.total, report.by_operator


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
