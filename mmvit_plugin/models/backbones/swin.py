"""Swin Transformer (v1) backbone, numerically the official dense-prediction variant.

Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021.
A block computes the official one: LayerNorm; zero-pad the map bottom/right to a multiple of
the window (padded tokens are not masked in unshifted windows, as in the official dense code); in
odd blocks roll it by half a window; partition into windows; window attention with the relative
position bias (and, in shifted windows, the -100 mask between tokens the roll brought together);
the same steps back; residual; LN → MLP → residual. Pad, roll and partition are one gather of
index tables (:func:`window_token_indices`) around the attention (see
:meth:`WindowAttention.forward`). With ``attn_impl='explicit'`` (the default on
CPU) the features are the official ones bit for bit. Module names follow the official keys, so
released classification and dense checkpoints load without renaming.

Nothing depends on a Python-side view of the input size: the index tables and the shift mask come
from aranges and comparisons (padded sizes written as multiples of the window, see
:func:`padded_size`), and the other padding from
:func:`~mmvit_plugin.models.layers.pad_to_multiple`, so the backbone compiles without graph
breaks and exports to ONNX with dynamic sizes. Nothing is cached per input size (building the
tables costs 0.1 % of a training step), so multi-scale training rebuilds nothing.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from ...checkpoint import StateDict
from ..attention import check_attn_impl, uses_sdpa
from ..layers import (ConvPatchEmbed, DropPath, Mlp, drop_path_schedule, nhwc_to_nchw,
                      pad_to_multiple)
from .base import PyramidBackbone
from .conversion import SWIN, map_values, swin_checkpoint_layout

#: Value the official code puts between tokens of different regions in shifted windows.
SHIFT_MASK_VALUE = -100.0


def relative_position_index(window: int) -> torch.Tensor:
    """``(w², w²)`` index into the ``((2w-1)², heads)`` bias table for each query/key pair."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij'))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def padded_size(size: int, window: int) -> int:
    """``size`` rounded up to whole windows, written as a multiple of ``window`` so that, traced
    with a symbolic ``size``, divisions by the window simplify (``torch.export`` proves the
    window partition's reshape from it)."""
    return (size + window - 1) // window * window


def window_coordinates(height: int, width: int, window: int,
                       device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Row and column of each slot of the windows of a ``height x width`` map (multiples of the
    window), in partition order: two ``(nW * w²,)`` tensors.

    The window partition of an index table, as arithmetic on one arange: a reshape-and-transpose
    partition (or a broadcast over the window counts) would make ``torch.compile`` specialise on
    a stage having a single window row and, separately, a single window column (size-1
    broadcasting and contiguity read those sizes), and recompile for each."""
    slot = torch.arange(height * width, device=device)
    index, offset = slot // (window * window), slot % (window * window)
    windows_per_row = width // window
    window_row = index // windows_per_row
    rows = window_row * window + offset // window
    # not index % windows_per_row: the ONNX exporter takes no remainder by a symbolic size
    cols = (index - window_row * windows_per_row) * window + offset % window
    return rows, cols


def shift_window_mask(height: int, width: int, window: int, shift: int,
                      device: Optional[torch.device] = None) -> torch.Tensor:
    """``(nW, w², w²)`` additive mask for the shifted windows of a rolled, padded ``height x width``
    map: -100 between tokens from different regions of the map before the roll, 0 elsewhere.

    The official code labels the nine regions by slice assignment; here the label of a row (or
    column) counts the region borders at or before it (``n - window``, ``n - shift``), which gives
    the same regions from comparisons alone: no in-place writes and no sizes read back, so it
    traces with symbolic sizes and runs without host-device syncs. With the gather indices it
    costs 7.0 ms of CPU time per iteration at 800×1088 (all 12 blocks; 0.1 % of a Swin-T
    forward + backward there), so it is built where it is used, not cached.
    """
    def region(n: int) -> torch.Tensor:
        pos = torch.arange(n, device=device)
        return (pos >= n - window).long() + (pos >= n - shift).long()

    rows, cols = window_coordinates(height, width, window, device)
    labels = (region(height)[rows] * 3 + region(width)[cols]).view(-1, window * window)  # (nW, w²)
    different = labels[:, None, :] != labels[:, :, None]
    return torch.where(different, SHIFT_MASK_VALUE, 0.).to(torch.float32)


def window_token_indices(height: int, width: int, window: int, shift: int,
                         device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Where the tokens of a ``height x width`` map go in its (shifted) windows, and back.

    The official block pads the map bottom/right to whole windows, rolls it by ``-shift`` and
    partitions it into windows. Returns ``(source, slot)``: ``source`` ``(nW * w²,)`` holds, for
    each window slot in partition order, the row-major index of the map token it holds, or
    ``height * width`` for a padded position; ``slot`` ``(height * width,)`` holds each token's
    slot. Arithmetic on coordinates only (no sizes read back): it traces with symbolic sizes.
    """
    padded_h, padded_w = padded_size(height, window), padded_size(width, window)
    # the rolled map's row r holds row (r + shift) mod Hp of the padded map, and row r of the
    # padded map lands on rolled row (r - shift) mod Hp (rolls of aranges: no modulo by a size)
    rows = torch.roll(torch.arange(padded_h, device=device), -shift)
    cols = torch.roll(torch.arange(padded_w, device=device), -shift)
    slot_rows, slot_cols = window_coordinates(padded_h, padded_w, window, device)
    rows, cols = rows[slot_rows], cols[slot_cols]
    source = torch.where((rows < height) & (cols < width), rows * width + cols, height * width)
    rolled_rows = torch.roll(torch.arange(padded_h, device=device), shift)[:height]
    rolled_cols = torch.roll(torch.arange(padded_w, device=device), shift)[:width]
    window_index = ((rolled_rows // window)[:, None] * (padded_w // window)
                    + (rolled_cols // window)[None, :])
    offset = (rolled_rows % window)[:, None] * window + (rolled_cols % window)[None, :]
    slot = (window_index * window * window + offset).flatten()
    return source, slot


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    Args:
        embed_dims: channels.
        num_heads: heads.
        window_size: side of the square window.
        qkv_bias: bias in the qkv projection.
        attn_drop: dropout on attention weights.
        proj_drop: dropout after the output projection.
        attn_impl: ``'explicit'``: the scores are computed as the official code does
            (``q * scale @ kᵀ``, + bias, + shift mask, softmax, ``@ v``), which gives the official
            values bit for bit and measured faster on CPU for 49-token windows than
            ``scaled_dot_product_attention`` with a float mask (which, with a bias that needs
            gradients, also falls back to its unfused path); ``'sdpa'``:
            ``F.scaled_dot_product_attention`` with bias and shift mask as one additive mask (the
            memory-efficient CUDA kernel takes it); ``'auto'``: ``'sdpa'`` on CUDA, else
            ``'explicit'``.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0., attn_impl: str = 'auto') -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.attn_impl = check_attn_impl('Swin', attn_impl)
        self.scale = (embed_dims // num_heads)**-0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1)**2, num_heads))
        self.register_buffer('relative_position_index', relative_position_index(window_size),
                             persistent=False)
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)

    def position_bias(self) -> torch.Tensor:
        """``(heads, w², w²)``, contiguous."""
        n = self.window_size**2
        table = self.relative_position_bias_table.t()
        return table[:, self.relative_position_index.view(-1)].view(-1, n, n)

    def uses_sdpa(self, x: torch.Tensor) -> bool:
        return uses_sdpa(self.attn_impl, x.device, cpu_default='explicit')

    def forward(self, x: torch.Tensor, shift: int = 0) -> torch.Tensor:
        """Attention of a normed map ``(B, H, W, C)`` within its windows, rolled by ``-shift``.

        The official dense block pads the map to whole windows with zero tokens (unmasked), rolls
        it, partitions it, and undoes those steps after attention. The projections act token by
        token, so here qkv runs on the map's own tokens, one gather puts them (and, in padded
        slots, the qkv of a zero token: the bias) in window order, and one gather brings the
        attention output back before the output projection: the official values bit for bit.
        Against the official code (pad / roll / partition around projections of every slot),
        Swin-T on CPU, 2 threads, takes 0.81–0.96× its time forward and 0.92–0.96× forward +
        backward (512² and 800×1344, batch 1 and 2; paired ratios of interleaved steps,
        tools/benchmark.py --interleave, docs/benchmarks.md), with the same peak memory at
        800×1333 (2673 against 2681 MB).
        """
        B, H, W, C = x.shape
        window = self.window_size
        padded_h, padded_w = padded_size(H, window), padded_size(W, window)
        source, slot = window_token_indices(H, W, window, shift, x.device)
        # The gathers take whole rows of the (B * tokens, channels) tensors: index_select on
        # dim 0 copies contiguous rows, about twice as fast as on dim 1 of (B, tokens, 3C)
        # (stage 1's qkv at 512×512: 1.2 against 2.6 ms, 2 threads); Swin-T forward took
        # 0.95–0.99× the time of the dim-1 form, forward + backward 0.95–1.02× (512², batch 1
        # and 2, and 800×1344; 4 interleaved runs, docs/benchmarks.md). Padded slots all read
        # one row after the tokens: the qkv of a zero token, i.e. the bias.
        tokens = H * W
        image = torch.arange(B, device=x.device)[:, None]
        source = torch.where(source < tokens, source + image * tokens, B * tokens).flatten()
        slot = (slot + image * (padded_h * padded_w)).flatten()
        # The zero token is appended to the C-wide input, not to the 3C-wide qkv (a third of the
        # copy); its qkv is the bias exactly. Swin-T, 2 threads, batch 2, the qkv-wide form took
        # 1.07-1.09x this one's time forward and 1.03-1.08x forward + backward at 800×1344,
        # 1.02-1.05x and 0.97-1.01x at 512² (docs/benchmarks.md).
        x = torch.cat([x.reshape(B * tokens, C), x.new_zeros(1, C)])
        windows = self.qkv(x).index_select(0, source).view(-1, window * window, 3 * C)
        shift_mask = None
        if shift:
            shift_mask = shift_window_mask(padded_h, padded_w, window, shift, x.device)
        out = self.attend(windows, shift_mask).view(-1, C).index_select(0, slot)
        return self.proj_drop(self.proj(out)).view(B, H, W, C)

    def attend(self, qkv: torch.Tensor, shift_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """``qkv``: windows ``(B * nW, w², 3C)``; ``shift_mask``: ``(nW, w², w²)`` or None.
        Returns the heads' outputs, merged: ``(B * nW, w², C)``."""
        BW, N, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
        heads = self.num_heads
        # One copy to (3, B * nW, heads, w², head_dims): q, k and v come out contiguous, and the
        # products below take them (and kᵀ) as they are.
        qkv = qkv.view(BW, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4).contiguous()
        bias = self.position_bias()
        if self.uses_sdpa(qkv):
            q, k, v = qkv.unbind(0)
            mask = bias.unsqueeze(0).to(q.dtype)  # (1, heads, N, N)
            if shift_mask is not None:  # windows of one image side by side: (B, nW * heads, ...)
                nW = shift_mask.shape[0]
                mask = (mask + shift_mask.to(q.dtype).unsqueeze(1)).view(1, nW * heads, N, N)
                q, k, v = (t.view(-1, nW * heads, N, t.shape[-1]) for t in (q, k, v))
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.attn_drop.p if self.training else 0.,
                scale=self.scale).view(BW, heads, N, -1)
        else:
            qkv[0].mul_(self.scale)  # in place: no scaled copy of q is made and kept for backward
            q, k, v = qkv.unbind(0)
            attn = q @ k.transpose(-2, -1)
            attn += bias.to(attn.dtype)
            if shift_mask is not None:
                nW = shift_mask.shape[0]
                attn.view(-1, nW, heads, N, N).add_(shift_mask.to(attn.dtype).unsqueeze(1))
            out = self.attn_drop(attn.softmax(dim=-1)) @ v
        return out.transpose(1, 2).reshape(BW, N, C)


class SwinBlock(nn.Module):
    """LN → (shifted) window attention → residual; LN → MLP → residual, on ``(B, H, W, C)`` maps.

    Args:
        embed_dims, num_heads, window_size, attn_impl: as for :class:`WindowAttention`.
        shift: whether this block shifts its windows by ``window_size // 2``.
        mlp_ratio: hidden width of the MLP over ``embed_dims``.
        qkv_bias, drop_rate, attn_drop_rate: as usual.
        drop_path: stochastic depth rate of this block.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, shift: bool,
                 mlp_ratio: float = 4., qkv_bias: bool = True, drop_rate: float = 0.,
                 attn_drop_rate: float = 0., drop_path: float = 0.,
                 attn_impl: str = 'auto') -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = WindowAttention(embed_dims, num_heads, window_size, qkv_bias=qkv_bias,
                                    attn_drop=attn_drop_rate, proj_drop=drop_rate,
                                    attn_impl=attn_impl)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop=drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), self.shift_size))
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
    """``depth`` blocks alternating plain and shifted windows, the output norm of a returned level
    (``out_norm``, else ``None``), then optional patch merging."""

    def __init__(self, embed_dims: int, depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float, qkv_bias: bool, drop_rate: float, attn_drop_rate: float,
                 drop_paths: Sequence[float], out_norm: bool, downsample: bool,
                 attn_impl: str) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinBlock(embed_dims, num_heads, window_size, shift=i % 2 == 1, mlp_ratio=mlp_ratio,
                      qkv_bias=qkv_bias, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
                      drop_path=drop_paths[i], attn_impl=attn_impl) for i in range(depth)
        ])
        self.out_norm = nn.LayerNorm(embed_dims) if out_norm else None
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
        with_cp: what the backward pass recomputes: ``False``, ``'act'`` (MLP activations) or
            ``True`` (whole blocks); see :class:`~mmvit_plugin.models.backbones.base.PyramidBackbone`.
        attn_impl: ``'auto'``, ``'explicit'`` or ``'sdpa'`` (see :class:`WindowAttention`).
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
                 with_cp: Union[bool, str] = False,
                 attn_impl: str = 'auto',
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(in_channels=in_channels, out_indices=out_indices,
                         frozen_stages=frozen_stages, with_cp=with_cp, init_cfg=init_cfg)
        arch = self.resolve_arch(arch)
        embed_dims, depths, num_heads = arch['embed_dims'], arch['depths'], arch['num_heads']
        if window_size < 2:
            raise ValueError(f'Swin: window_size must be at least 2, got {window_size}')
        check_attn_impl('Swin', attn_impl)
        self.window_size = window_size
        self.num_features = [embed_dims * 2**i for i in range(4)]
        self.check_heads(self.num_features, num_heads)

        self.patch_embed = ConvPatchEmbed(in_channels, embed_dims, patch_size, patch_size,
                                          pad_to_stride=True)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = drop_path_schedule(depths, drop_path_rate)
        self.stages = nn.ModuleList([
            SwinStage(dims, depth, heads, window_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                      drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_paths=rates[i],
                      out_norm=i in self.out_indices, downsample=i < 3, attn_impl=attn_impl)
            for i, (dims, depth, heads) in enumerate(zip(self.num_features, depths, num_heads))
        ])
        self.apply(self.init_module_weights)

    def stage_modules(self, stage: int) -> List[nn.Module]:
        return [self.patch_embed] if stage < 0 else [self.stages[stage]]

    def stage_blocks(self) -> List[List[nn.Module]]:
        return [list(stage.blocks) for stage in self.stages]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_input(x)
        x = self.pos_drop(self.patch_embed(x))
        outs = []
        for stage in self.stages:
            for block in stage.blocks:
                x = self.run_block(block, x)
            if stage.out_norm is not None:
                outs.append(nhwc_to_nchw(stage.out_norm(x)))
            if stage.downsample is not None:
                x = stage.downsample(x)
        return tuple(outs)

    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        return convert_swin_checkpoint(state_dict, self.window_size)

    def checkpoint_layout(self, state_dict: StateDict) -> str:
        return swin_checkpoint_layout(state_dict)


def convert_swin_checkpoint(state_dict: StateDict, window_size: Optional[int] = None) -> StateDict:
    """Swin weights in any layout of :func:`~.conversion.swin_checkpoint_layout` to our keys.

    Our keys are the official dense ones with the stages under ``stages.{i}`` (official
    ``layers.{i}``) and each output norm in its stage (``stages.{i}.out_norm``, official
    ``norm{i}``). The other layouts are renamed (and, where a library stores them differently,
    re-laid out; :data:`~.conversion.SWIN`): OpenMMLab's merges
    (``nn.Unfold`` channel order) are put back in the official concatenation order, timm's merges
    move back to the end of the previous stage, Hugging Face's separate query/key/value are fused
    into ``qkv``. Derived buffers (``relative_position_index``, ``attn_mask``) are dropped and, when
    ``window_size`` is given, each ``relative_position_bias_table`` is resized to it (bicubic, as
    the official fine-tuning code does). Classifier weights (``norm``, ``head``) keep official
    names and stay unexpected keys. Idempotent: our own files pass through unchanged.

    Raises:
        CheckpointError: a Hugging Face block with some of query/key/value missing.
    """
    if window_size is None:
        return SWIN(state_dict)
    return SWIN(state_dict, map_values(r'relative_position_bias_table$', lambda table:
                                       resize_relative_position_bias_table(table, window_size)))


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
