"""Swin Transformer (v1) backbone, numerically the official dense-prediction variant.

Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021.
Any input size: the patch embedding pads to a multiple of 4, every block pads its map bottom/right
to a multiple of the window (padded tokens are not masked in unshifted windows, as in the official
code), and the shift mask is built for the padded size. Module names follow the official keys, so
released classification and dense checkpoints load without renaming.

The values are the official ones, but the work is arranged differently (see :class:`WindowGrid`):
qkv and the output projection run on the map's own tokens only, padded slots take the qkv bias
(what a zero token projects to), and pad + roll + window partition + head split is one gather,
as is its inverse.
"""
from functools import partial
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from ...checkpoint import StateDict
from ..layers import ConvPatchEmbed, DropPath, Mlp, nhwc_to_nchw, pad_to_multiple, window_partition
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


class _SelectRows(torch.autograd.Function):
    """``out = x[index]`` along dim 0, then zeros in the rows ``fill``.

    Outside ``fill``, ``index`` must read each row of ``x`` at most once. The gradient is then the
    same kind of selection: back along ``inverse`` (the output row each row of ``x`` went to), with
    zeros at ``inverse_fill`` (the rows of ``x`` never read); a gather again, not the scatter-add
    that autograd does for ``index_select``.
    """

    @staticmethod
    def forward(ctx, x, index, fill, inverse, inverse_fill):  # type: ignore[override]
        ctx.save_for_backward(index, fill, inverse, inverse_fill)
        out = x.index_select(0, index)
        if fill.numel():
            out.index_fill_(0, fill, 0)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        index, fill, inverse, inverse_fill = ctx.saved_tensors
        return _SelectRows.apply(grad, inverse, inverse_fill, index, fill), None, None, None, None


class _QKVToWindows(torch.autograd.Function):
    """Rows ``(b, token, 3, head)`` of a projected map to ``(3, b, window, head, slot)`` windows
    (:meth:`WindowGrid.qkv_windows`): one gather, the padded slots set to the qkv bias, and q
    multiplied by the attention scale in place (so that no separate scaled copy of q is made and
    kept for backward). The gradient is a gather back, q's part scaled."""

    @staticmethod
    def forward(ctx, x, fill_value, index, fill, inverse, heads, scale):  # type: ignore[override]
        ctx.save_for_backward(fill, inverse)
        ctx.heads, ctx.scale = heads, scale
        out = x.index_select(0, index)
        if fill.numel():
            if fill_value is None:
                out.index_fill_(0, fill, 0)
            else:
                out.index_copy_(0, fill, fill_value)
        out[:out.shape[0] // 3].mul_(scale)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        fill, inverse = ctx.saved_tensors
        grad_x = grad_value = None
        if ctx.needs_input_grad[0]:
            grad_x = grad.index_select(0, inverse)
            grad_x.view(-1, 3, ctx.heads * grad.shape[-1])[:, 0].mul_(ctx.scale)
        if ctx.needs_input_grad[1]:
            grad_value = grad.index_select(0, fill)
            grad_value[:grad_value.shape[0] // 3].mul_(ctx.scale)
        return grad_x, grad_value, None, None, None, None, None


class _GridRows(NamedTuple):
    """Row indices of :meth:`WindowGrid.qkv_windows` and :meth:`WindowGrid.windows_to_map` for a
    number of heads and a batch size."""
    qkv_index: torch.Tensor
    qkv_fill: torch.Tensor
    qkv_inverse: torch.Tensor
    map_index: torch.Tensor
    map_inverse: torch.Tensor
    map_unread: torch.Tensor


class WindowGrid:
    """Where the tokens of a ``height x width`` map sit in Swin's windows, and back.

    The official dense block zero-pads the normed map bottom/right to a multiple of the window,
    rolls it by ``-shift``, cuts it into windows, projects qkv and splits heads; after attention
    it merges heads, projects, and undoes the windows, roll and padding. The projections act per
    token, so here qkv is projected on the map's own tokens, and one gather puts the result
    straight into the ``(3, B * nW, heads, w², head_dims)`` layout of the attention products, the
    padded slots getting what a zero token projects to: the qkv bias. After attention, one gather
    takes the ``(B * nW, heads, w², head_dims)`` output back to the ``(B, H, W, C)`` map, which is
    then projected, again without padded tokens. Gradients are gathers too (:class:`_SelectRows`,
    :class:`_QKVToWindows`).
    Same values as the official code, without the projections of padded tokens and with one
    copy in place of the four to six (pad, roll, partition, head split, and back) of each block.
    The row indices are built once per map size, heads and batch size.
    """

    def __init__(self, height: int, width: int, window: int, shift: int,
                 device: Optional[torch.device] = None) -> None:
        self.height, self.width, self.window, self.shift = height, width, window, shift
        self.padded = (-(-height // window) * window, -(-width // window) * window)
        # the map row / column each row / column of the rolled, padded map comes from
        src_row = (torch.arange(self.padded[0], device=device) + shift) % self.padded[0]
        src_col = (torch.arange(self.padded[1], device=device) + shift) % self.padded[1]
        token = src_row[:, None] * width + src_col[None, :]
        real = (src_row < height)[:, None] & (src_col < width)[None, :]
        # slots in window order: (window row, window col, row in window, col in window)
        token, real = (window_partition(t[None, :, :, None], (window, window)).reshape(-1)
                       for t in (token, real))
        slots = torch.arange(token.numel(), device=device)
        #: window slot of each map token, and the slots that hold padding
        self.token_slot = torch.empty(height * width, dtype=torch.long, device=device)
        self.token_slot[token[real]] = slots[real]
        self.pad_slots = slots[~real]
        self._rows: Dict[Tuple[int, int], _GridRows] = {}

    @property
    def num_slots(self) -> int:
        return self.padded[0] * self.padded[1]

    def rows(self, heads: int, batch: int) -> _GridRows:
        key = (heads, batch)
        if key not in self._rows:
            if len(self._rows) >= 8:
                self._rows.clear()
            self._rows[key] = self._build_rows(heads, batch)
        return self._rows[key]

    def _build_rows(self, heads: int, batch: int) -> _GridRows:
        N = self.window**2
        device = self.token_slot.device
        arange = partial(torch.arange, device=device)
        head = arange(heads)
        # the row of (token, head), and of (head, padded slot), in one image's (nW, heads, N) block
        window, pos = self.token_slot.div(N, rounding_mode='floor'), self.token_slot % N
        token_rows = (window[:, None] * heads + head) * N + pos[:, None]  # (T, heads)
        window, pos = self.pad_slots.div(N, rounding_mode='floor'), self.pad_slots % N
        pad_rows = (window[None, :] * heads + head[:, None]) * N + pos[None, :]  # (heads, P)
        block = self.num_slots * heads
        # qkv: source rows (b, token, 3, head) go to (3, b, window, head, pos)
        offsets = (arange(3)[:, None] * batch + arange(batch)[None, :]) * block  # (3, B)
        qkv_inverse = (offsets.t()[:, None, :, None] + token_rows[None, :, None, :]).reshape(-1)
        qkv_index = torch.zeros(3 * batch * block, dtype=torch.long, device=device)
        qkv_index[qkv_inverse] = arange(qkv_inverse.numel())
        # padded rows in (3, head, b, slot) order, the order of the bias expanded over them
        qkv_fill = (offsets[:, None, :, None] + pad_rows[None, :, None, :]).reshape(-1)
        # attention output: source rows (b, window, head, pos) go to (b, token, head)
        offsets = arange(batch)[:, None, None] * block
        map_index = (offsets + token_rows[None]).reshape(-1)
        map_unread = (offsets + pad_rows[None]).reshape(-1)
        map_inverse = torch.zeros(batch * block, dtype=torch.long, device=device)
        map_inverse[map_index] = arange(map_index.numel())
        # index_select takes int32 indices: half the memory for the four large ones
        index_dtype = torch.int32 if 3 * batch * block < 2**31 else torch.long
        small = partial(torch.Tensor.to, dtype=index_dtype)
        return _GridRows(small(qkv_index), qkv_fill, small(qkv_inverse), small(map_index),
                         small(map_inverse), map_unread)

    def qkv_windows(self, qkv: torch.Tensor, heads: int, bias: Optional[torch.Tensor],
                    scale: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, H, W, 3C)`` projected map (no padding) to ``q * scale, k, v``, each
        ``(B * nW, heads, w², C / heads)``; padded slots get ``bias`` (``(3C,)``) or zeros."""
        B, dims = qkv.shape[0], qkv.shape[-1] // (3 * heads)
        rows = self.rows(heads, B)
        fill_value = None
        if bias is not None and rows.qkv_fill.numel():
            fill_value = bias.to(qkv.dtype).view(3 * heads, 1, dims)
            fill_value = fill_value.expand(-1, B * self.pad_slots.numel(), -1).reshape(-1, dims)
        out = _QKVToWindows.apply(qkv.reshape(-1, dims), fill_value, rows.qkv_index,
                                  rows.qkv_fill, rows.qkv_inverse, heads, scale)
        return out.view(3, -1, heads, self.window**2, dims).unbind(0)

    def windows_to_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B * nW, heads, w², C / heads)`` to the ``(B, H, W, C)`` map, padding dropped."""
        BW, heads, _, dims = x.shape
        B = BW * self.window**2 // self.num_slots
        rows = self.rows(heads, B)
        out = _SelectRows.apply(x.reshape(-1, dims), rows.map_index, rows.map_unread[:0],
                                rows.map_inverse, rows.map_unread)
        return out.view(B, self.height, self.width, heads * dims)


class StageGeometry(NamedTuple):
    """What the blocks of a stage share for one map size: the grids of plain and shifted blocks,
    and the shift mask."""
    plain: WindowGrid
    shifted: WindowGrid
    shift_mask: torch.Tensor


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias.

    The scores are computed explicitly, as the official code does (``q * scale @ kᵀ``, then the
    bias, then the shift mask, both added in place, then softmax): on CPU this measured faster for
    49-token windows than ``scaled_dot_product_attention`` with a float mask, and gives the
    official values bit for bit. Padded slots take part as keys and values, as officially, but
    are never projected (see :class:`WindowGrid`).

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

    def forward(self, x: torch.Tensor, grid: WindowGrid,
                shift_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x``: ``(B, H, W, C)`` (normed); ``grid``: its :class:`WindowGrid`; ``shift_mask``:
        ``(nW, w², w²)`` or None. Returns ``(B, H, W, C)``."""
        heads = self.num_heads
        q, k, v = grid.qkv_windows(self.qkv(x), heads, self.qkv.bias, self.scale)
        BW, _, N, _ = q.shape
        attn = q @ k.transpose(-2, -1)
        attn += self.position_bias().to(attn.dtype)
        if shift_mask is not None:
            nW = shift_mask.shape[0]
            attn.view(BW // nW, nW, heads, N, N).add_(shift_mask.to(attn.dtype).unsqueeze(1))
        attn = self.attn_drop(attn.softmax(dim=-1))
        return self.proj_drop(self.proj(grid.windows_to_map(attn @ v)))


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

    def forward(self, x: torch.Tensor, geometry: StageGeometry) -> torch.Tensor:
        if self.shift_size:
            y = self.attn(self.norm1(x), geometry.shifted, geometry.shift_mask)
        else:
            y = self.attn(self.norm1(x), geometry.plain)
        x = x + self.drop_path(y)
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
        self.check_heads(self.num_features, num_heads)

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

    def geometry(self, height: int, width: int, device: torch.device) -> StageGeometry:
        """Window grids and shift mask of a ``height x width`` map, kept for the stage sizes of
        the last input so that a repeated input size builds them once."""
        w = self.window_size
        key = (height, width, device)
        cache = self.__dict__.setdefault('_geometries', {})
        geometry = cache.get(key)
        if geometry is None:
            if len(cache) >= len(self.layers):
                cache.clear()
            grid = WindowGrid(height, width, w, 0, device)
            geometry = cache[key] = StageGeometry(
                grid, WindowGrid(height, width, w, w // 2, device),
                shift_window_mask(*grid.padded, w, w // 2, device))
        return geometry

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_input(x)
        x = self.pos_drop(self.patch_embed(x))
        outs = []
        for i, stage in enumerate(self.layers):
            geometry = self.geometry(x.shape[1], x.shape[2], x.device)
            for block in stage.blocks:
                x = self.run_block(block, x, geometry)
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
