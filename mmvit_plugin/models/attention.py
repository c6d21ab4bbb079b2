"""The attention switch of the softmax-attention backbones (``attn_impl``): fused
``F.scaled_dot_product_attention`` or the product written out.

``'sdpa'`` lets PyTorch pick a fused kernel (flash / memory-efficient on CUDA, flash on CPU), which
never holds the ``queries x keys`` matrix; ``'explicit'`` computes ``softmax(q kᵀ · scale) v`` with
plain operators, as the official implementations do (every exporter and compiler takes it, and
it is what the official numerics are); ``'auto'`` takes SDPA on CUDA and, on other devices, the
backbone's own CPU choice (each backbone says what it measured).
"""
import torch
import torch.nn.functional as F

#: Settings of ``attn_impl``.
ATTN_IMPLS = ('auto', 'sdpa', 'explicit')


def check_attn_impl(owner: str, attn_impl: str) -> str:
    """``attn_impl`` if it is one of :data:`ATTN_IMPLS`, else a ValueError naming ``owner``."""
    if attn_impl not in ATTN_IMPLS:
        raise ValueError(f'{owner}: attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}')
    return attn_impl


def uses_sdpa(attn_impl: str, device: torch.device, cpu_default: str) -> bool:
    """Whether ``attn_impl`` means SDPA for tensors on ``device``: ``'auto'`` is SDPA on CUDA and
    ``cpu_default`` (``'sdpa'`` or ``'explicit'``) elsewhere."""
    if attn_impl == 'auto':
        return device.type == 'cuda' or cpu_default == 'sdpa'
    return attn_impl == 'sdpa'


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, attn_impl: str,
              cpu_default: str, dropout_p: float = 0.) -> torch.Tensor:
    """``softmax(q kᵀ · scale) v`` over the last two dims of ``(..., N, d)`` tensors, no mask.

    Args:
        q, k, v: ``(..., Nq, d)``, ``(..., Nk, d)``, ``(..., Nk, dv)``.
        scale: the factor on the scores.
        attn_impl: ``'auto'``, ``'sdpa'`` or ``'explicit'`` (see the module docstring).
        cpu_default: what ``'auto'`` means off CUDA, ``'sdpa'`` or ``'explicit'``.
        dropout_p: dropout on the attention weights (pass 0 in eval mode).
    """
    if uses_sdpa(attn_impl, q.device, cpu_default):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)
    # q is scaled first (as the official CSWin code does): a q-sized product, not an Nq x Nk one
    weights = ((q * scale) @ k.transpose(-2, -1)).softmax(dim=-1)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v
