"""Pieces shared by the backbones: padding, window/stripe partition, head splitting, conv embeddings.

Token maps are kept channels-last, ``(B, H, W, C)``, between blocks: that is what LayerNorm and the
Linear layers want, and window/stripe partition is then a pure reshape.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp  # noqa: F401  (re-exported: the one DropPath/Mlp we use)

Pads = Tuple[int, int, int, int]  # top, bottom, left, right


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU approximation used by CvT: ``x * sigmoid(1.702 x)``."""
    return x * torch.sigmoid(1.702 * x)


class QuickGELU(nn.Module):

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quick_gelu(x)


def pad_to_multiple(x: torch.Tensor,
                    multiple: Tuple[int, int],
                    centred: bool = False) -> Tuple[torch.Tensor, Pads]:
    """Zero-pad a channels-last map ``(B, H, W, C)`` so H and W are multiples of ``multiple``.

    Args:
        x: the map.
        multiple: ``(mh, mw)``.
        centred: pad both sides (top/left get ``pad // 2``, as CSWin does) instead of bottom/right
            only (Swin).

    Returns:
        The padded map and the ``(top, bottom, left, right)`` pads, for :func:`crop_padding`.
    """
    H, W = x.shape[1:3]
    pad_h = -H % multiple[0]
    pad_w = -W % multiple[1]
    if centred:
        pads = (pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)
    else:
        pads = (0, pad_h, 0, pad_w)
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, pads[2], pads[3], pads[0], pads[1]))
    return x, pads


def crop_padding(x: torch.Tensor, pads: Pads) -> torch.Tensor:
    """Undo :func:`pad_to_multiple` on a channels-last map."""
    top, bottom, left, right = pads
    if bottom or right or top or left:
        x = x[:, top:x.shape[1] - bottom, left:x.shape[2] - right]
    return x


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
            H, W = x.shape[-2:]
            x = F.pad(x, (0, -W % self.stride, 0, -H % self.stride))
        x = self.proj(x).permute(0, 2, 3, 1)
        if self.norm is not None:
            x = self.norm(x)
        return x


def nhwc_to_nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).contiguous()
