"""Swin Transformer (v1) backbone, numerically the official dense-prediction variant.

Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021.
Any input size: the patch embedding pads to a multiple of 4, every block pads its map bottom/right
to a multiple of the window (padded tokens are not masked in unshifted windows, as in the official
code), and the shift mask is built for the padded size. Module names follow the official keys, so
released classification and dense checkpoints load without renaming.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from ..checkpoint import StateDict
from ..layers import (ConvPatchEmbed, DropPath, Mlp, merge_heads, nhwc_to_nchw, pad_to_multiple,
                      crop_padding, window_partition, window_reverse)
from .base import PyramidBackbone

#: Value the official code puts between tokens of different regions in shifted windows.
SHIFT_MASK_VALUE = -100.0


def relative_position_index(window: int) -> torch.Tensor:
    """``(w², w²)`` index into the ``((2w-1)², heads)`` bias table for each query/key pair."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij'))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shift_window_mask(height: int, width: int, window: int, shift: int,
                      device: Optional[torch.device] = None) -> torch.Tensor:
    """``(nW, w², w²)`` additive mask keeping shifted windows from mixing regions of the padded map."""
    region = torch.zeros(1, height, width, 1, device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for label, (hs, ws) in enumerate((hs, ws) for hs in bounds for ws in bounds):
        region[:, hs, ws, :] = label
    region = window_partition(region, (window, window)).squeeze(-1)
    mask = region[:, None, :] - region[:, :, None]
    return torch.zeros_like(mask).masked_fill_(mask != 0, SHIFT_MASK_VALUE)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    Args:
        embed_dims: channels.
        num_heads: heads.
        window_size: side of the square window.
        qkv_bias: bias in the qkv projection.
        attn_drop: dropout on attention weights.
        proj_drop: dropout after the output projection.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0.) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.attn_drop = attn_drop
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1)**2, num_heads))
        self.register_buffer('relative_position_index', relative_position_index(window_size),
                             persistent=False)
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)

    def position_bias(self) -> torch.Tensor:
        """``(heads, w², w²)``."""
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)

    def forward(self, windows: torch.Tensor, batch: int,
                shift_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``windows``: ``(B * nW, w², C)``; ``shift_mask``: ``(nW, w², w²)`` or None."""
        BW, N, C = windows.shape
        qkv = self.qkv(windows).view(BW, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.position_bias().to(q.dtype)
        if shift_mask is None:
            mask = bias.unsqueeze(0)
        else:
            mask = (bias.unsqueeze(0) + shift_mask.to(q.dtype).unsqueeze(1))
            mask = mask.unsqueeze(0).expand(batch, -1, -1, -1, -1).reshape(BW, self.num_heads, N, N)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(merge_heads(x)))


class SwinBlock(nn.Module):
    """LN → (shifted) window attention → residual; LN → MLP → residual, on ``(B, H, W, C)`` maps.

    Args:
        embed_dims, num_heads, window_size: as for :class:`WindowAttention`.
        shift: whether this block shifts its windows by ``window_size // 2``.
        mlp_ratio: hidden width of the MLP over ``embed_dims``.
        qkv_bias, drop_rate, attn_drop_rate: as usual.
        drop_path: stochastic depth rate of this block.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, shift: bool,
                 mlp_ratio: float = 4., qkv_bias: bool = True, drop_rate: float = 0.,
                 attn_drop_rate: float = 0., drop_path: float = 0.) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = WindowAttention(embed_dims, num_heads, window_size, qkv_bias, attn_drop_rate,
                                    drop_rate)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop=drop_rate)

    def forward(self, x: torch.Tensor, shift_mask: Optional[torch.Tensor]) -> torch.Tensor:
        B, H, W, C = x.shape
        w, s = self.window_size, self.shift_size
        y, pads = pad_to_multiple(self.norm1(x), (w, w))
        Hp, Wp = y.shape[1:3]
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        y = self.attn(window_partition(y, (w, w)), B, shift_mask if s else None)
        y = window_reverse(y, (w, w), Hp, Wp)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + self.drop_path(crop_padding(y, pads))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2×2 neighbourhood concat (order x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2]),
    LN(4C), Linear(4C → 2C, no bias); odd sides are padded by one first."""

    def __init__(self, embed_dims: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * embed_dims)
        self.reduction = nn.Linear(4 * embed_dims, 2 * embed_dims, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = pad_to_multiple(x, (2, 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """``depth`` blocks alternating plain and shifted windows, then optional patch merging."""

    def __init__(self, embed_dims: int, depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float, qkv_bias: bool, drop_rate: float, attn_drop_rate: float,
                 drop_paths: Sequence[float], downsample: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinBlock(embed_dims, num_heads, window_size, shift=i % 2 == 1, mlp_ratio=mlp_ratio,
                      qkv_bias=qkv_bias, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
                      drop_path=drop_paths[i]) for i in range(depth)
        ])
        self.downsample = PatchMerging(embed_dims) if downsample else None


@MODELS.register_module(name='Swin')
class Swin(PyramidBackbone):
    """Swin Transformer backbone (``type='Swin'``), a 4-level pyramid from any input size.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'``, or a dict with ``embed_dims``,
            ``depths`` and ``num_heads``.
        in_channels: input channels.
        window_size: window side; 7, or 12 for the ImageNet-22k 384 weights. Checkpoints with
            another window size load with their bias tables resized (bicubic).
        patch_size: side of the non-overlapping patch embedding.
        mlp_ratio: MLP hidden width over channels.
        qkv_bias: bias in the qkv projections.
        drop_rate: dropout after the embedding, in MLPs and after attention projections.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, rising linearly over all blocks up to this rate.
        out_indices: levels to return (0..3, strides 4..32); each gets a LayerNorm.
        frozen_stages: ``-1`` none; ``0`` the patch embedding; ``k`` also stages ``0..k-1``.
        with_cp: gradient checkpointing per block (non-reentrant).
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=PATH)`` loads an
            official classification release (``{'model': ...}``), an mmseg-0.x / mmdet-2.x dense
            checkpoint (``backbone.`` keys) or a converted file.
    """

    arch_zoo = {
        'tiny': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
        'small': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
        'base': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
        'large': dict(embed_dims=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
    }
    arch_keys = ('embed_dims', 'depths', 'num_heads')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 window_size: int = 7,
                 patch_size: int = 4,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(in_channels, out_indices, frozen_stages, False, with_cp, init_cfg)
        arch = self.resolve_arch(arch)
        embed_dims, depths, num_heads = arch['embed_dims'], arch['depths'], arch['num_heads']
        if window_size < 2:
            raise ValueError(f'Swin: window_size must be at least 2, got {window_size}')
        self.window_size = window_size
        self.num_features = [embed_dims * 2**i for i in range(4)]
        for dims, heads in zip(self.num_features, num_heads):
            if dims % heads:
                raise ValueError(f'Swin: {dims} channels do not split into {heads} heads')

        self.patch_embed = ConvPatchEmbed(in_channels, embed_dims, patch_size, patch_size,
                                          pad_to_stride=True)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (dims, depth, heads) in enumerate(zip(self.num_features, depths, num_heads)):
            start = sum(depths[:i])
            self.layers.append(
                SwinStage(dims, depth, heads, window_size, mlp_ratio, qkv_bias, drop_rate,
                          attn_drop_rate, rates[start:start + depth], downsample=i < 3))
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))
        self.apply(self.init_module_weights)

    def stage_modules(self, stage: int) -> List[nn.Module]:
        if stage < 0:
            return [self.patch_embed]
        norm = getattr(self, f'norm{stage}', None)
        return [self.layers[stage]] + ([norm] if norm is not None else [])

    def stage_blocks(self) -> List[List[nn.Module]]:
        return [list(stage.blocks) for stage in self.layers]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_input(x)
        x = self.pos_drop(self.patch_embed(x))
        outs = []
        for i, stage in enumerate(self.layers):
            Hp, Wp = (-(-s // self.window_size) * self.window_size for s in x.shape[1:3])
            mask = shift_window_mask(Hp, Wp, self.window_size, self.window_size // 2, x.device)
            for block in stage.blocks:
                x = self.run_block(block, x, mask)
            if i in self.out_indices:
                outs.append(nhwc_to_nchw(getattr(self, f'norm{i}')(x)))
            if stage.downsample is not None:
                x = stage.downsample(x)
        return tuple(outs)

    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        return convert_swin_checkpoint(state_dict, self.window_size)


def convert_swin_checkpoint(state_dict: StateDict, window_size: Optional[int] = None) -> StateDict:
    """Official Swin weights (classification or dense) to this module's keys.

    Drops the derived buffers (``relative_position_index``, ``attn_mask``) and, when
    ``window_size`` is given, resizes each ``relative_position_bias_table`` to it (bicubic, as the
    official fine-tuning code does). Keys are otherwise the official ones; our own files pass through.
    """
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith(('relative_position_index', 'attn_mask')):
            continue
        if key.endswith('relative_position_bias_table') and window_size is not None:
            value = resize_relative_position_bias_table(value, window_size)
        out[key] = value
    return out


def resize_relative_position_bias_table(table: torch.Tensor, window_size: int) -> torch.Tensor:
    """Resize a ``((2w-1)², heads)`` table to ``window_size``."""
    side = round(table.shape[0]**0.5)
    new_side = 2 * window_size - 1
    if side == new_side:
        return table
    if side * side != table.shape[0] or table.dim() != 2:
        raise ValueError(f'relative_position_bias_table of shape {tuple(table.shape)} is not '
                         '((2w-1)^2, heads)')
    grid = table.t().reshape(1, -1, side, side).float()
    grid = F.interpolate(grid, size=(new_side, new_side), mode='bicubic', align_corners=False)
    return grid.reshape(-1, new_side * new_side).t().to(table.dtype).contiguous()
