"""CSWin Transformer backbone, numerically the official dense-prediction variant.

Dong et al., "CSWin Transformer: A General Vision Transformer Backbone with Cross-Shaped Windows",
CVPR 2022. Each block splits its channels (and heads) in two: one half attends inside vertical
stripes (full height, ``split`` columns wide), the other inside horizontal stripes (full width,
``split`` rows high); the last stage attends globally. LePE, a depthwise 3×3 convolution on V inside
each stripe, is added to the attention output.

Any input size: as in the official segmentation code, each branch zero-pads its q/k/v map CENTRED to
a multiple of its stripe size (no attention mask; padded keys score 0), then crops back. Unlike that
code, widths are C, 2C, 4C, 8C whatever the heads (so CSWin-L builds), stripes are views
(:func:`window_partition` of full-width rows; the vertical branch runs on the transposed map),
attention runs on strided views of one padded q/k/v tensor per branch, through
``F.scaled_dot_product_attention`` or written out (``attn_impl``), and ``with_cp='act'``
recomputes the MLP's GELU in the backward pass instead of storing it (see docs/benchmarks.md for
the memory and time of each ``with_cp`` setting).

Our keys differ from the official ones; :func:`convert_cswin_checkpoint` maps them (it also runs as a
``load_state_dict`` pre-hook, so official classification and UperNet files load as they are).
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from ...checkpoint import StateDict
from ..attention import attention, check_attn_impl
from ..layers import (ConvPatchEmbed, DropPath, Mlp, crop_padding, drop_path_schedule,
                      merge_heads, nhwc_to_nchw, pad_to_multiple, window_partition,
                      window_reverse)
from .base import PyramidBackbone
from .conversion import CSWIN, cswin_checkpoint_layout

#: What ``attn_impl='auto'`` runs off CUDA. Measured on CPU (tools/benchmark.py, CSWin-T at
#: 512×512, 2 threads, fp32, 3 interleaved rounds): ``'explicit'`` takes 1.04× SDPA's time forward
#: and 1.15× forward + backward (paired by round), with a 1006 MB training peak against 713 MB.
CPU_ATTN_IMPL = 'sdpa'


class CrossShapedAttention(nn.Module):
    """Cross-shaped window self-attention with LePE on ``(B, H, W, C)`` maps.

    One Linear makes q, k, v; channels ``[:C/2]`` (heads ``[:heads/2]``) attend inside vertical
    stripes ``(H, split)``, channels ``[C/2:]`` inside horizontal stripes ``(split, W)``. With
    ``split_size=None`` there is a single branch over the whole map (the last stage).

    Every branch works on full-width rows of stripes, so that partitioning is a view: the vertical
    branch runs on the transposed map (attention does not depend on the token order inside a
    stripe, and its LePE kernel is transposed to match). Each branch gets its q/k/v from its own
    rows of the qkv weight, so the only large copies are the padding (or, for the transposed
    branch, making it contiguous) and the final concatenation.

    Args:
        embed_dims: channels.
        num_heads: heads of the whole block (split evenly over the branches).
        split_size: stripe width; ``None`` for global attention.
        qkv_bias: bias in the qkv projection.
        attn_drop: dropout on attention weights.
        attn_impl: ``'sdpa'`` (``F.scaled_dot_product_attention``), ``'explicit'`` (``q·kᵀ·scale``,
            softmax, ``@ v`` written out, as the official code) or ``'auto'`` (SDPA on CUDA,
            :data:`CPU_ATTN_IMPL` elsewhere).
    """

    def __init__(self, embed_dims: int, num_heads: int, split_size: Optional[int],
                 qkv_bias: bool = True, attn_drop: float = 0., attn_impl: str = 'auto') -> None:
        super().__init__()
        self.attn_impl = check_attn_impl('CSWin', attn_impl)
        self.split_size = split_size
        self.num_branches = 1 if split_size is None else 2
        self.branch_dims = embed_dims // self.num_branches
        self.branch_heads = num_heads // self.num_branches
        self.attn_drop = attn_drop
        self.scale = (self.branch_dims // self.branch_heads)**-0.5
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        # LePE: one depthwise 3x3 convolution (with bias) per branch.
        self.lepe = nn.ModuleList([
            nn.Conv2d(self.branch_dims, self.branch_dims, 3, 1, 1, groups=self.branch_dims)
            for _ in range(self.num_branches)
        ])
        self.proj = nn.Linear(embed_dims, embed_dims)

    def branch_qkv(self, x: torch.Tensor, branch: int) -> torch.Tensor:
        """q, k, v of ``branch`` (its channels of each), ``(B, H, W, 3c)``."""
        if self.num_branches == 1:
            return self.qkv(x)
        nb, c = self.num_branches, self.branch_dims
        weight = self.qkv.weight.view(3, nb, c, -1)[:, branch].reshape(3 * c, -1)
        bias = self.qkv.bias
        if bias is not None:
            bias = bias.view(3, nb, c)[:, branch].reshape(3 * c)
        return F.linear(x, weight, bias)

    def branch_forward(self, x: torch.Tensor, branch: int) -> torch.Tensor:
        """Attention of one branch, ``(B, H, W, C)`` → ``(B, H, W, c)``."""
        qkv = self.branch_qkv(x, branch)
        transposed = self.split_size is not None and branch == 0
        if transposed:  # vertical stripes are horizontal ones of the transposed map
            qkv = qkv.transpose(1, 2)
        B, H, W, _ = qkv.shape  # H, W of the (possibly transposed) map
        sh = H if self.split_size is None else self.split_size
        # Centred zero padding of q, k and v (the official dense variant's), no mask.
        qkv, pads = pad_to_multiple(qkv, (sh, W), centred=True)
        windows = window_partition(qkv.contiguous(), (sh, W))  # a view: (B', N, 3c)
        BW, N = windows.shape[:2]
        c, heads = self.branch_dims, self.branch_heads
        q, k, v = windows.view(BW, N, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        # LePE inside each stripe (zero padding stops at the stripe borders), on a channels-last
        # view of v.
        v_map = windows[..., 2 * c:].view(BW, sh, W, c).permute(0, 3, 1, 2)
        conv = self.lepe[branch]
        weight = conv.weight.transpose(-1, -2) if transposed else conv.weight
        lepe = F.conv2d(v_map, weight, conv.bias, padding=1, groups=c)
        out = attention(q, k, v, self.scale, self.attn_impl, CPU_ATTN_IMPL,
                        dropout_p=self.attn_drop if self.training else 0.)
        # LePE first: the sum then takes its token-major layout, so the reverse below is a view.
        out = lepe.permute(0, 2, 3, 1).reshape(BW, N, c) + merge_heads(out)
        out = crop_padding(window_reverse(out, (sh, W), qkv.shape[1], W), pads)
        return out.transpose(1, 2) if transposed else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.branch_forward(x, b) for b in range(self.num_branches)]
        return self.proj(torch.cat(outs, -1) if len(outs) > 1 else outs[0])


class CSWinBlock(nn.Module):
    """LN → cross-shaped attention → residual; LN → MLP → residual, on ``(B, H, W, C)`` maps.

    Args:
        embed_dims, num_heads, split_size, qkv_bias, attn_impl: as for
            :class:`CrossShapedAttention`.
        mlp_ratio: hidden width of the MLP over ``embed_dims``.
        drop_rate: dropout in the MLP (the official attention projection has none).
        attn_drop_rate: dropout on attention weights.
        drop_path: stochastic depth rate of this block.
    """

    def __init__(self, embed_dims: int, num_heads: int, split_size: Optional[int],
                 mlp_ratio: float = 4., qkv_bias: bool = True, drop_rate: float = 0.,
                 attn_drop_rate: float = 0., drop_path: float = 0.,
                 attn_impl: str = 'auto') -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = CrossShapedAttention(embed_dims, num_heads, split_size, qkv_bias=qkv_bias,
                                         attn_drop=attn_drop_rate, attn_impl=attn_impl)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop=drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CSWinStage(nn.Module):
    """``depth`` blocks, the output LayerNorm of this level (if it is returned), then the merge
    (conv 3×3 s2 p1 + LN, doubling the width) into the next stage."""

    def __init__(self, embed_dims: int, depth: int, num_heads: int, split_size: Optional[int],
                 mlp_ratio: float, qkv_bias: bool, drop_rate: float, attn_drop_rate: float,
                 drop_paths: Sequence[float], out_norm: bool, downsample: bool,
                 attn_impl: str = 'auto') -> None:
        super().__init__()
        self.blocks = nn.ModuleList([
            CSWinBlock(embed_dims, num_heads, split_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                       drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
                       drop_path=drop_paths[i], attn_impl=attn_impl) for i in range(depth)
        ])
        self.out_norm = nn.LayerNorm(embed_dims) if out_norm else None
        self.downsample = ConvPatchEmbed(embed_dims, 2 * embed_dims, 3, 2, 1) if downsample else None


@MODELS.register_module(name='CSWin')
class CSWin(PyramidBackbone):
    """CSWin Transformer backbone (``type='CSWin'``), a 4-level pyramid from any input size.

    Level sizes: ``floor((H - 3) / 4) + 1`` after the stem, then ``ceil(/2)`` per merge.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'``, or a dict with ``embed_dims``,
            ``depths`` and ``num_heads`` (heads of stages 1–3 must be even: half per branch).
            Widths are ``embed_dims × (1, 2, 4, 8)``.
        in_channels: input channels.
        split_size: stripe width of each stage, ``(1, 2, 7, 7)``; ``(1, 2, 12, 12)`` for the
            ImageNet-22k 384 weights. The 4th entry is kept for the official signature only: the last
            stage attends globally.
        mlp_ratio: MLP hidden width over channels.
        qkv_bias: bias in the qkv projections (the released weights have it).
        drop_rate: dropout in the MLPs.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, rising linearly over all blocks up to this rate (the
            official recipes use 0.3 / 0.4 / 0.6 for T / S / B on ADE20K).
        out_indices: levels to return (0..3, strides 4..32); each gets a LayerNorm.
        frozen_stages: ``-1`` none; ``0`` the stem; ``k`` also stages ``0..k-1`` (a stage owns its
            blocks, its output norm and the merge after it).
        with_cp: what the backward pass recomputes instead of storing: ``False``, ``'act'`` (the
            MLPs' GELU, whose 4C-wide outputs are the largest tensors a block keeps) or ``True``
            (whole blocks); see
            :class:`~mmvit_plugin.models.backbones.base.PyramidBackbone`.
        attn_impl: ``'auto'``, ``'sdpa'`` or ``'explicit'`` (see :class:`CrossShapedAttention`).
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=PATH)`` loads an
            official classification release (``{'state_dict': ..., 'state_dict_ema': ...}``), an
            official UperNet / Mask R-CNN checkpoint (``backbone.`` keys) or a file of our own.
    """

    arch_zoo = {
        'tiny': dict(embed_dims=64, depths=(1, 2, 21, 1), num_heads=(2, 4, 8, 16)),
        'small': dict(embed_dims=64, depths=(2, 4, 32, 2), num_heads=(2, 4, 8, 16)),
        'base': dict(embed_dims=96, depths=(2, 4, 32, 2), num_heads=(4, 8, 16, 32)),
        'large': dict(embed_dims=144, depths=(2, 4, 32, 2), num_heads=(6, 12, 24, 24)),
    }
    arch_keys = ('embed_dims', 'depths', 'num_heads')
    min_input_size = 3  # the 7x7 stride-4 stem with padding 2

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 split_size: Sequence[int] = (1, 2, 7, 7),
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
        check_attn_impl('CSWin', attn_impl)
        arch = self.resolve_arch(arch)
        embed_dims, depths, num_heads = arch['embed_dims'], arch['depths'], arch['num_heads']
        split_size = tuple(split_size)
        if len(split_size) != 4 or not all(isinstance(s, int) and s > 0 for s in split_size):
            raise ValueError(f'CSWin: split_size needs 4 positive ints, got {split_size!r}')
        self.split_size = split_size
        self.num_features = [embed_dims * 2**i for i in range(4)]
        self.check_heads(self.num_features, num_heads)
        for i, heads in enumerate(num_heads):
            if i < 3 and heads % 2:
                raise ValueError(f'CSWin: stage {i} needs an even number of heads (half per '
                                 f'stripe direction), got {heads}')

        self.patch_embed = ConvPatchEmbed(in_channels, embed_dims, 7, 4, 2)
        rates = drop_path_schedule(depths, drop_path_rate)
        self.stages = nn.ModuleList()
        for i, (dims, depth, heads) in enumerate(zip(self.num_features, depths, num_heads)):
            self.stages.append(
                CSWinStage(dims, depth, heads, split_size[i] if i < 3 else None,
                           mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                           attn_drop_rate=attn_drop_rate, drop_paths=rates[i],
                           out_norm=i in self.out_indices, downsample=i < 3,
                           attn_impl=attn_impl))
        self.apply(self.init_module_weights)

    def stage_modules(self, stage: int) -> List[nn.Module]:
        return [self.patch_embed] if stage < 0 else [self.stages[stage]]

    def stage_blocks(self) -> List[List[nn.Module]]:
        return [list(stage.blocks) for stage in self.stages]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_input(x)
        x = self.patch_embed(x)
        outs = []
        for stage in self.stages:
            for block in stage.blocks:
                x = self.run_block(block, x)
            if stage.out_norm is not None:
                outs.append(nhwc_to_nchw(stage.out_norm(x)))
            if stage.downsample is not None:
                x = stage.downsample(x.permute(0, 3, 1, 2))
        return tuple(outs)

    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        return convert_cswin_checkpoint(state_dict)

    def checkpoint_layout(self, state_dict: StateDict) -> str:
        return cswin_checkpoint_layout(state_dict)


def convert_cswin_checkpoint(state_dict: StateDict) -> StateDict:
    """Official CSWin weights (classification or dense) to this module's keys
    (:data:`~.conversion.CSWIN`); the classifier's ``norm``/``head`` and our own keys pass
    through unchanged."""
    return CSWIN(state_dict)
