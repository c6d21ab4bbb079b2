"""Pieces shared by the backbones: the drop-path schedule, padding, window/stripe partition, head
splitting, layout moves, depthwise convolution, conv embeddings and the MLP.

Token maps are kept channels-last, ``(B, H, W, C)``, between blocks: that is what LayerNorm and the
Linear layers want, and window/stripe partition is then a pure reshape.

Everything here also traces with symbolic sizes (``torch.compile(dynamic=True)``, ONNX export with
dynamic height and width): no Python branch depends on a size that is symbolic while tracing.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath  # noqa: F401  (re-exported: the one DropPath we use)
from timm.layers import Mlp as _TimmMlp
from torch.utils.checkpoint import checkpoint

Pads = Tuple[int, int, int, int]  # top, bottom, left, right


def drop_path_schedule(depths: Sequence[int],
                       rates: Union[float, Sequence[float]]) -> List[List[float]]:
    """The stochastic-depth rate of every block, per stage, rising linearly from 0.

    Computed as the official code computes it (``torch.linspace`` in float32), on the CPU whatever
    the default device, so that a backbone also builds on the ``meta`` device.

    Args:
        depths: the number of blocks of each stage.
        rates: a float ``r``: one ramp from 0 to ``r`` over all blocks of all stages (Swin, CSWin,
            MPViT); one rate per stage: each stage ramps from 0 to its own rate over its blocks
            (CvT's official per-stage schedule).

    Returns:
        One list of rates per stage, ``depths[i]`` long.
    """
    if isinstance(rates, (int, float)):
        flat = torch.linspace(0, rates, sum(depths), device='cpu').tolist()
        return [flat[sum(depths[:i]):sum(depths[:i + 1])] for i in range(len(depths))]
    return [torch.linspace(0, rate, depth, device='cpu').tolist()
            for rate, depth in zip(rates, depths)]


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU approximation used by CvT: ``x * sigmoid(1.702 x)``."""
    return x * torch.sigmoid(1.702 * x)


class QuickGELU(nn.Module):

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quick_gelu(x)


def _is_concrete(*sizes) -> bool:
    """Whether all sizes are plain ints in eager mode, so that branching on them is free.

    Under ``torch.compile`` the answer is always no: dynamo presents symbolic sizes as ints, and
    a branch on one becomes a guard (CSWin compiled with ``dynamic=True`` recompiled for every
    new parity of a stripe padding), so traced code takes the branch that holds for every size.
    ``torch.export`` (non-strict) passes ``SymInt`` objects, which the type check catches."""
    return not torch.compiler.is_compiling() and all(isinstance(s, int) for s in sizes)


def pad_to_multiple(x: torch.Tensor, multiple: Tuple[int, int], centred: bool = False,
                    channels_last: bool = True) -> Tuple[torch.Tensor, Pads]:
    """Zero-pad a map so that its height and width are multiples of ``multiple``.

    The one padding routine of the package: Swin's patch embedding, windows and merges, and
    CSWin's stripes all pad through it.

    Args:
        x: the map, ``(B, H, W, C)`` or, with ``channels_last=False``, ``(B, C, H, W)``.
        multiple: ``(mh, mw)``.
        centred: pad both sides (top/left get ``pad // 2``, as CSWin does) instead of bottom/right
            only (Swin).
        channels_last: the layout of ``x``.

    Returns:
        The padded map and the ``(top, bottom, left, right)`` pads, for :func:`crop_padding`.
    """
    H, W = x.shape[1:3] if channels_last else x.shape[2:4]
    pad_h = -H % multiple[0]
    pad_w = -W % multiple[1]
    if centred:
        pads = (pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)
    else:
        pads = (0, pad_h, 0, pad_w)
    # In eager mode a map that fits is returned as it is; traced with symbolic sizes, the pad is
    # always in the graph (a zero pad is free there) so that the graph holds for every size.
    if not _is_concrete(pad_h, pad_w) or pad_h or pad_w:
        top, bottom, left, right = pads
        spatial = (left, right, top, bottom)
        x = F.pad(x, (0, 0) + spatial if channels_last else spatial)
    return x, pads


def crop_padding(x: torch.Tensor, pads: Pads, channels_last: bool = True) -> torch.Tensor:
    """Undo :func:`pad_to_multiple` (a view)."""
    top, bottom, left, right = pads
    if _is_concrete(*pads) and not any(pads):
        return x
    H, W = x.shape[1:3] if channels_last else x.shape[2:4]
    if channels_last:
        return x[:, top:H - bottom, left:W - right]
    return x[:, :, top:H - bottom, left:W - right]


def window_partition(x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:
    """Split ``(B, H, W, C)`` into non-overlapping ``wh x ww`` windows: ``(B * nW, wh * ww, C)``.

    Windows are ordered row-major over the map; H and W must be multiples of the window. With
    ``window=(H, sw)`` or ``(sh, W)`` the windows are CSWin's vertical or horizontal stripes.
    """
    B, H, W, C = x.shape
    wh, ww = window
    x = x.view(B, H // wh, wh, W // ww, ww, C).transpose(2, 3)
    return x.reshape(-1, wh * ww, C)


def window_reverse(windows: torch.Tensor, window: Tuple[int, int], H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, wh * ww, C)`` to ``(B, H, W, C)``."""
    wh, ww = window
    C = windows.shape[-1]
    x = windows.view(-1, H // wh, W // ww, wh, ww, C).transpose(2, 3)
    return x.reshape(-1, H, W, C)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(..., N, heads * d)`` to ``(..., heads, N, d)``, the layout of ``scaled_dot_product_attention``."""
    *lead, N, C = x.shape
    return x.view(*lead, N, num_heads, C // num_heads).transpose(-3, -2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(..., heads, N, d)`` back to ``(..., N, heads * d)``."""
    *lead, heads, N, d = x.shape
    return x.transpose(-3, -2).reshape(*lead, N, heads * d)


def nhwc_to_nchw(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C)`` to a contiguous ``(B, C, H, W)`` (a backbone output)."""
    return x.permute(0, 3, 1, 2).contiguous()


def tokens_to_nchw(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Tokens ``(B, H * W, C)`` seen as a ``(B, C, H, W)`` map: a view, with channels-last
    memory when the tokens are contiguous (convolutions take it as it is)."""
    return x.unflatten(1, tuple(size)).permute(0, 3, 1, 2)


def nchw_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` to tokens ``(B, H * W, C)``; a view when ``x`` has channels-last memory."""
    return x.permute(0, 2, 3, 1).flatten(1, 2)


class _DepthwiseConv2d(torch.autograd.Function):
    """Depthwise convolution (stride 1, square padding) whose weight gradient is itself a
    depthwise convolution: the padded input correlated with the output gradient, image by image
    (the gradient is the kernel, ``groups=C``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                padding: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, bias, padding=padding, groups=weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        pad, channels = ctx.padding, weight.shape[0]
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], channels,
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            padded = F.pad(x, (pad, pad, pad, pad))
            grad_weight = sum(F.conv2d(padded[i:i + 1], grad[i].unsqueeze(1), groups=channels)
                              for i in range(x.shape[0])).transpose(0, 1)
        if ctx.needs_input_grad[2]:  # False without a bias
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias, None


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                     padding: int) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding, groups=C)`` for a ``(C, 1, K, K)`` kernel.

    oneDNN has a depthwise weight-gradient kernel for 3×3 only; larger kernels take its grouped
    path (the weights blocked 16 × 16 per group, mostly zeros). On CPU in fp32, with gradients
    and K > 3, the weight gradient is computed as a depthwise convolution instead (see
    :class:`_DepthwiseConv2d`): 7×7, forward + backward, 2 threads, channels-last: 3.6 against
    7.8 ms at 128 × 64 × 64, 8.9 against 16.7 ms at 64 × 128 × 128, 21.4 against 33.6 ms at
    128 × 100 × 167. Its weight gradient sums in another order (within 5e-6 relative here).
    Traced (FLOP counting, TorchScript ONNX export) it is the plain convolution.
    """
    if (weight.shape[-1] > 3 and x.device.type == 'cpu' and x.dtype == torch.float32
            and torch.is_grad_enabled() and not torch.is_autocast_enabled('cpu')
            and (x.requires_grad or weight.requires_grad) and not torch.jit.is_tracing()):
        return _DepthwiseConv2d.apply(x, weight, bias, padding)
    return F.conv2d(x, weight, bias, padding=padding, groups=weight.shape[0])


class ConvPatchEmbed(nn.Module):
    """Convolutional token embedding: ``Conv2d`` then LayerNorm over channels.

    Serves Swin's patch embedding (k4 s4), CSWin's stem (k7 s4 p2) and merges (k3 s2 p1), and CvT's
    stage embeddings. The output is channels-last ``(B, H', W', C)``.

    Args:
        in_channels: input channels.
        embed_dims: output channels.
        kernel_size, stride, padding: of the convolution.
        norm: whether a LayerNorm follows the convolution.
        norm_eps: the LayerNorm's eps.
        pad_to_stride: zero-pad the input bottom/right to a multiple of the stride first (Swin).
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 kernel_size: int,
                 stride: int,
                 padding: int = 0,
                 norm: bool = True,
                 norm_eps: float = 1e-5,
                 pad_to_stride: bool = False) -> None:
        super().__init__()
        self.stride = stride
        self.pad_to_stride = pad_to_stride
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size, stride, padding)
        self.norm: Optional[nn.LayerNorm] = nn.LayerNorm(embed_dims, eps=norm_eps) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` to ``(B, H', W', embed_dims)``."""
        if self.pad_to_stride:
            x, _ = pad_to_multiple(x, (self.stride, self.stride), channels_last=False)
        x = self.proj(x).permute(0, 2, 3, 1)
        if self.norm is not None:
            x = self.norm(x)
        return x


class Mlp(_TimmMlp):
    """timm's ``Mlp`` (fc1 → act → drop1 → norm → fc2 → drop2; the same keys), whose activation
    can be recomputed in the backward pass.

    With :attr:`recompute_act` set (a backbone's ``with_cp='act'``) and gradients flowing, the
    activation's output, the ``hidden``-wide input of ``fc2`` and the largest tensor a transformer
    block keeps for backward, is not stored: the tail from the activation on runs under
    non-reentrant checkpointing, which in backward reruns only the activation (and its dropout,
    with the same random state) until ``fc2``'s input is rebuilt. Values and gradients are
    unchanged.
    """

    #: Recompute the activation in backward instead of storing its output.
    recompute_act: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.fc1(x)
        if self.recompute_act and torch.is_grad_enabled() and hidden.requires_grad:
            return checkpoint(self._from_act, hidden, use_reentrant=False)
        return self._from_act(hidden)

    def _from_act(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(hidden)))))
