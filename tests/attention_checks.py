"""Checks of the ``attn_impl`` switch (CSWin, CvT): both implementations compute the same thing,
and ``'auto'`` picks what the backbone says."""
from types import ModuleType
from typing import Callable, List
from unittest import mock

import torch
import torch.nn as nn

from backbone_checks import assert_rel_close
from mmvit_plugin.models import attention as attention_module


def check_same_outputs_and_gradients(first: nn.Module, second: nn.Module, x: torch.Tensor,
                                     rtol: float = 1e-9) -> None:
    """Same outputs and the same gradients of every parameter (``second`` holds ``first``'s
    weights). Both run in float64, so that what differs is the computation, not fp32 rounding
    (some gradients, e.g. of q where the softmax is nearly flat, are all cancellation)."""
    first, second, x = first.double(), second.double(), x.double()
    weights = None
    results = []
    for model in (first, second):
        outs = model(x)
        weights = weights or [torch.randn(o.shape, dtype=o.dtype) for o in outs]
        loss = sum((o * w).sum() for o, w in zip(outs, weights))
        results.append((outs, torch.autograd.grad(loss, list(model.parameters()))))
    (outs_a, grads_a), (outs_b, grads_b) = results
    for i, (a, b) in enumerate(zip(outs_a, outs_b)):
        assert_rel_close(a, b, rtol, f'level {i}')
    # each gradient on its own scale, floored at 1e-6 of the largest one's: gradients that are zero
    # in exact arithmetic (a bias added to every key) hold rounding noise only, about 1e-18 of it
    floor = 1e-6 * max(g.abs().max().item() for g in grads_b)
    for (name, _), a, b in zip(first.named_parameters(), grads_a, grads_b):
        assert_rel_close(a, b, rtol, name, scale=max(b.abs().max().item(), floor))


def sdpa_calls(model: nn.Module, x: torch.Tensor) -> List[tuple]:
    """The q shapes of the ``F.scaled_dot_product_attention`` calls of one forward pass."""
    calls = []
    sdpa = attention_module.F.scaled_dot_product_attention

    def spy(q, *args, **kwargs):
        calls.append(tuple(q.shape))
        return sdpa(q, *args, **kwargs)

    with mock.patch.object(attention_module.F, 'scaled_dot_product_attention', spy):
        with torch.no_grad():
            model(x)
    return calls


def check_auto_attention_choice(backbone_module: ModuleType, build: Callable[..., nn.Module]) -> None:
    """``'sdpa'`` always runs SDPA, ``'explicit'`` never, ``'auto'`` on CPU as the module's
    ``CPU_ATTN_IMPL`` says and on CUDA always SDPA."""
    x = torch.randn(1, 3, 64, 64)
    assert sdpa_calls(build(attn_impl='sdpa').eval(), x)
    assert not sdpa_calls(build(attn_impl='explicit').eval(), x)
    cpu_choice = backbone_module.CPU_ATTN_IMPL
    assert cpu_choice in ('sdpa', 'explicit')
    assert bool(sdpa_calls(build(attn_impl='auto').eval(), x)) == (cpu_choice == 'sdpa')
    for default in ('sdpa', 'explicit'):
        assert attention_module.uses_sdpa('auto', torch.device('cuda'), default)
