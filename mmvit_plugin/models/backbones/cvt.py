"""CvT backbone: the three official stages, numerically the official model, plus a stride-32 stage.

Wu et al., "CvT: Introducing Convolutions to Vision Transformers", ICCV 2021.
Each stage embeds its input with a strided convolution + LayerNorm and runs transformer blocks
whose q/k/v come from a depthwise 3×3 convolution + BatchNorm on the token map (k/v at stride 2)
followed by a Linear layer; the third stage carries a cls token that skips the convolutions.
Attention is global and scaled by the whole width (``dim ** -0.5``), as in the official code; by
default it runs through ``F.scaled_dot_product_attention`` without a mask, so the fused (flash)
kernels keep memory linear in the number of tokens instead of holding the ``queries × keys``
matrix (``attn_impl='explicit'`` writes the product out, as the official code).

The official model has three stages (strides 4, 8, 16). The fourth level (stride 32) is ours: see
:class:`CvT`. Module names are the official keys, so the released flat state dicts load as they are.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.registry import MODELS

from ...checkpoint import StateDict
from ..attention import attention, check_attn_impl
from ..layers import (ConvPatchEmbed, DropPath, Mlp, QuickGELU, drop_path_schedule, merge_heads,
                      nchw_to_tokens, split_heads, tokens_to_nchw)
from .base import NUM_LEVELS, PyramidBackbone
from .conversion import CVT, cvt_checkpoint_layout

#: What ``attn_impl='auto'`` runs off CUDA. Measured on CPU (tools/benchmark.py, CvT-13 at
#: 512×512, 2 threads, fp32, 3 interleaved rounds): ``'explicit'`` takes 1.55× SDPA's time forward
#: and 1.74× forward + backward, with peaks of 584 / 1571 MB against 122 / 761 MB.
CPU_ATTN_IMPL = 'sdpa'

#: Conv token embedding (kernel, stride, padding) per stage; our ``stages.3`` repeats ``stages.2``'s.
EMBED_CONVS = ((7, 4, 2), (3, 2, 1), (3, 2, 1), (3, 2, 1))


class ConvProjection(nn.Module):
    """Depthwise ``k×k`` convolution (no bias) + BatchNorm2d on a token map: CvT's q/k/v projection.

    Args:
        dims: channels.
        kernel_size, stride, padding: of the depthwise convolution.
    """

    def __init__(self, dims: int, kernel_size: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dims, dims, kernel_size, stride, padding, groups=dims, bias=False)
        self.bn = nn.BatchNorm2d(dims)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` to tokens ``(B, H' * W', C)``."""
        return nchw_to_tokens(self.bn(self.conv(fmap)))


class ConvAttention(nn.Module):
    """Global multi-head attention with convolutional q/k/v projections.

    Tokens beyond the ``H × W`` map (the cls token, first in the sequence) skip the convolutions and
    are prepended to q, k and v before their Linear projections.

    Args:
        embed_dims: channels.
        num_heads: heads.
        stride_kv: stride of the k/v convolutions (2 in the official stages).
        qkv_bias: bias in the q/k/v Linear layers.
        attn_drop: dropout on attention weights.
        proj_drop: dropout after the output projection.
        attn_impl: ``'sdpa'`` (``F.scaled_dot_product_attention``: no mask and 4-D inputs, so the
            fused flash kernels, CPU and CUDA, never hold the ``queries × keys`` matrix),
            ``'explicit'`` (``q·kᵀ·scale``, softmax, ``@ v`` written out, as the official code;
            that matrix is 66,600 × 16,650 per head and image in ``stages.0`` at 800×1333) or
            ``'auto'`` (SDPA on CUDA, :data:`CPU_ATTN_IMPL` elsewhere).
    """

    def __init__(self, embed_dims: int, num_heads: int, stride_kv: int = 2, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0., attn_impl: str = 'auto') -> None:
        super().__init__()
        self.attn_impl = check_attn_impl('CvT', attn_impl)
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        # The official scale uses the whole width, not the head width.
        self.scale = embed_dims**-0.5
        self.conv_proj_q = ConvProjection(embed_dims, 3, 1, 1)
        self.conv_proj_k = ConvProjection(embed_dims, 3, stride_kv, 1)
        self.conv_proj_v = ConvProjection(embed_dims, 3, stride_kv, 1)
        self.proj_q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.proj_k = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.proj_v = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """``x``: ``(B, T + H * W, C)`` with ``T`` leading cls tokens."""
        B, N, C = x.shape
        extra = N - H * W
        fmap = tokens_to_nchw(x[:, extra:], (H, W))
        q, k, v = (proj(fmap) for proj in (self.conv_proj_q, self.conv_proj_k, self.conv_proj_v))
        if extra:
            cls = x[:, :extra]
            q, k, v = (torch.cat([cls, t], dim=1) for t in (q, k, v))
        q = split_heads(self.proj_q(q), self.num_heads)
        k = split_heads(self.proj_k(k), self.num_heads)
        v = split_heads(self.proj_v(v), self.num_heads)
        out = attention(q, k, v, self.scale, self.attn_impl, CPU_ATTN_IMPL,
                        dropout_p=self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(merge_heads(out)))


class CvTBlock(nn.Module):
    """LN → convolutional attention → residual; LN → MLP (QuickGELU) → residual, on tokens.

    Args:
        embed_dims, num_heads, stride_kv, qkv_bias, attn_impl: as for :class:`ConvAttention`.
        mlp_ratio: MLP hidden width over ``embed_dims``.
        drop_rate: dropout in the MLP and after the attention projection.
        attn_drop_rate: dropout on attention weights.
        drop_path: stochastic depth rate of this block.
    """

    def __init__(self, embed_dims: int, num_heads: int, stride_kv: int = 2, mlp_ratio: float = 4.,
                 qkv_bias: bool = True, drop_rate: float = 0., attn_drop_rate: float = 0.,
                 drop_path: float = 0., attn_impl: str = 'auto') -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-5)
        self.attn = ConvAttention(embed_dims, num_heads, stride_kv, qkv_bias=qkv_bias,
                                  attn_drop=attn_drop_rate, proj_drop=drop_rate,
                                  attn_impl=attn_impl)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-5)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), act_layer=QuickGELU, drop=drop_rate)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), H, W))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CvTStage(nn.Module):
    """Conv token embedding + LN, an optional cls token, and ``depth`` blocks."""

    def __init__(self, in_channels: int, embed_dims: int, depth: int, num_heads: int,
                 embed_conv: Tuple[int, int, int], stride_kv: int, cls_token: bool,
                 mlp_ratio: float, qkv_bias: bool, drop_rate: float, attn_drop_rate: float,
                 drop_paths: Sequence[float], attn_impl: str = 'auto') -> None:
        super().__init__()
        kernel, stride, padding = embed_conv
        self.patch_embed = ConvPatchEmbed(in_channels, embed_dims, kernel, stride, padding,
                                          norm_eps=1e-5)
        if cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
            nn.init.trunc_normal_(self.cls_token, std=.02)
        else:
            self.cls_token = None
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.ModuleList([
            CvTBlock(embed_dims, num_heads, stride_kv, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                     drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path=drop_paths[j],
                     attn_impl=attn_impl) for j in range(depth)
        ])


@MODELS.register_module(name='CvT')
class CvT(PyramidBackbone):
    """CvT backbone (``type='CvT'``), a 4-level pyramid (strides 4, 8, 16, 32) from any input size.

    Levels 0–2 are the official CvT stages (``stages.0..2``), giving the official features:
    tokens without the cls token, as NCHW maps, without a norm. Sizes: ``floor((H - 3) / 4) + 1``,
    then ``ceil(/2)`` per level.

    Level 3 (stride 32) is our own ``stages.3``: one more conv token embedding (3×3, stride 2,
    pad 1, + LN, as in ``stages.1``/``stages.2``) and ``depths[3]`` CvT blocks (no cls token) whose
    k/v convolutions keep stride 1, since the map is small (25×42 tokens at 800×1333): full global
    attention over ``stages.2``'s features, at the stride FPN/UperNet want. Its width, heads and
    depth are the 4th entries of the arch. Defaults (384 channels, 6 heads, 1 block for 13/21;
    1024, 16, 1 for w24) cost 1,328,256 (embedding) + 1,787,136 (block) = 3,115,392 parameters
    for 13 and 21 (+15.9% / +10.0% over the native 19,611,712 / 31,236,928) and 9,440,256 +
    12,630,016 = 22,070,272 for w24 (+8.0% over 276,169,344). ``depths[3] = 0`` leaves only the
    strided conv + LN (1,328,256 parameters at 384 channels).
    This stage is not in the official weights: it is reported as missing when they load.

    Memory: CvT-13 forward + backward of one 800×1333 image peaks at about 2.6 GiB above rest on
    CPU (1.7 GiB with ``with_cp``), against about 15 GiB for the official attention, whose
    ``queries × keys`` matrices dominate (66,600 × 16,700 per image in ``stages.0``).

    Args:
        arch: ``'13'``, ``'21'``, ``'w24'``, or a dict with ``embed_dims``, ``num_heads`` and
            ``depths`` (4 entries each: the three native stages, then the extra stage 4) and
            optionally ``drop_path_rates`` (4 entries).
        in_channels: input channels.
        mlp_ratio: MLP hidden width over channels.
        qkv_bias: bias in the q/k/v Linear layers (True in all official models).
        drop_rate: dropout after the embeddings, in MLPs and after attention projections.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth. ``None``: the arch's per-stage rates (official: 0, 0, 0.1
            for 13/21; 0, 0, 0.3 for w24; ``stages.3`` takes ``stages.2``'s). A float ``r``: rates
            ``(0, 0, r, r)``. A sequence of 4: per-stage rates. Native ``stages.{i}`` uses
            ``linspace(0, rate_i, depth_i)`` as the official code; the blocks of ``stages.3`` all use
            ``rate_3`` (they sit on top of the deepest blocks).
        out_indices: levels to return (0..3, strides 4..32).
        frozen_stages: ``-1`` none; ``0`` the conv embedding of ``stages.0``; ``k`` also
            ``stages.0..k-1`` whole (levels below ``k``, the cls token included).
        norm_eval: keep the BatchNorms of the q/k/v projections in eval mode (running statistics
            fixed) while training. Note: in training mode with BN on, the k/v maps of the last
            native stage must hold more than one value per channel (e.g. inputs of 64×64 and up for
            a batch of one).
        with_cp: what the backward pass recomputes instead of storing: ``False``, ``'act'`` (the
            MLPs' QuickGELU) or ``True`` (whole blocks, non-reentrant; the recomputation updates
            the BN running statistics a second time unless ``norm_eval`` is on); see
            :class:`~mmvit_plugin.models.backbones.base.PyramidBackbone`.
        attn_impl: ``'auto'``, ``'sdpa'`` or ``'explicit'`` (see :class:`ConvAttention`).
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=PATH)`` loads an
            official release (a flat state dict), a dense checkpoint (``backbone.`` keys) or a
            converted file.
    """

    arch_zoo = {
        '13': dict(embed_dims=(64, 192, 384, 384), num_heads=(1, 3, 6, 6), depths=(1, 2, 10, 1),
                   drop_path_rates=(0., 0., 0.1, 0.1)),
        '21': dict(embed_dims=(64, 192, 384, 384), num_heads=(1, 3, 6, 6), depths=(1, 4, 16, 1),
                   drop_path_rates=(0., 0., 0.1, 0.1)),
        'w24': dict(embed_dims=(192, 768, 1024, 1024), num_heads=(3, 12, 16, 16),
                    depths=(2, 2, 20, 1), drop_path_rates=(0., 0., 0.3, 0.3)),
    }
    arch_keys = ('embed_dims', 'num_heads', 'depths')
    #: The 7×7 stride-4 embedding with padding 2 needs 3 pixels.
    min_input_size = 3

    def __init__(self,
                 arch: Union[str, dict] = '13',
                 in_channels: int = 3,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: Union[None, float, Sequence[float]] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: Union[bool, str] = False,
                 attn_impl: str = 'auto',
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(in_channels=in_channels, out_indices=out_indices,
                         frozen_stages=frozen_stages, norm_eval=norm_eval, with_cp=with_cp,
                         init_cfg=init_cfg)
        check_attn_impl('CvT', attn_impl)
        arch = self.resolve_arch(arch)
        embed_dims, num_heads, depths = (tuple(arch[k]) for k in self.arch_keys)
        if min(depths[:3]) < 1 or depths[3] < 0:
            raise ValueError(f'CvT: native stages need at least one block, got depths {depths}')
        self.check_heads(embed_dims, num_heads)
        rates = self._stage_rates(drop_path_rate, arch.get('drop_path_rates', (0., 0., .1, .1)))
        self.embed_dims = embed_dims
        self.num_features = list(embed_dims)

        # the official per-stage ramps for the native stages; every block of our stages.3 takes rates[3]
        drop_paths = drop_path_schedule(depths[:3], rates[:3]) + [[rates[3]] * depths[3]]
        self.stages = nn.ModuleList([
            CvTStage(((in_channels, ) + embed_dims)[i], embed_dims[i], depths[i], num_heads[i],
                     EMBED_CONVS[i], stride_kv=2 if i < 3 else 1, cls_token=i == 2,
                     mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                     attn_drop_rate=attn_drop_rate, drop_paths=drop_paths[i], attn_impl=attn_impl)
            for i in range(NUM_LEVELS)
        ])
        self.apply(self.init_module_weights)

    @staticmethod
    def _stage_rates(rate: Union[None, float, Sequence[float]],
                     default: Sequence[float]) -> Tuple[float, ...]:
        if rate is None:
            rates = tuple(default)
        elif isinstance(rate, (int, float)):
            rates = (0., 0., float(rate), float(rate))
        else:
            rates = tuple(rate)
        if len(rates) != NUM_LEVELS or any(not 0 <= r < 1 for r in rates):
            raise ValueError(f'CvT: drop path rates must be {NUM_LEVELS} values in [0, 1), '
                             f'got {rate!r}')
        return rates

    def stage_modules(self, stage: int) -> List[nn.Module]:
        # the stem is stage 0's conv embedding
        if stage < 0:
            return [self.stages[0].patch_embed]
        if stage == 0:
            return [self.stages[0].pos_drop, self.stages[0].blocks]
        return [self.stages[stage]]

    def stage_blocks(self) -> List[List[nn.Module]]:
        return [list(stage.blocks) for stage in self.stages]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_input(x)
        outs = []
        last = max(self.out_indices)
        for i, stage in enumerate(self.stages[:last + 1]):
            tokens = stage.patch_embed(x)  # (B, H, W, C)
            B, H, W, _ = tokens.shape
            tokens = tokens.flatten(1, 2)
            if stage.cls_token is not None:
                tokens = torch.cat([stage.cls_token.expand(B, -1, -1), tokens], dim=1)
            tokens = stage.pos_drop(tokens)
            for block in stage.blocks:
                tokens = self.run_block(block, tokens, H, W)
            # Channels-last memory seen as NCHW: the next embedding convolves it directly.
            x = tokens_to_nchw(tokens[:, tokens.shape[1] - H * W:], (H, W))
            if i in self.out_indices:
                outs.append(x.contiguous())
        return tuple(outs)

    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        return convert_cvt_checkpoint(state_dict)

    def checkpoint_layout(self, state_dict: StateDict) -> str:
        return cvt_checkpoint_layout(state_dict)


def convert_cvt_checkpoint(state_dict: StateDict) -> StateDict:
    """CvT weights, official or Hugging Face, to this module's keys.

    Our module names are the official ones with the stages under ``stages.{i}`` instead of
    ``stage{i}`` (``stages.{0,1,2}.patch_embed``, ``stages.2.cls_token``,
    ``…blocks.{j}.attn.conv_proj_{q,k,v}.{conv,bn}``, ``…attn.proj_{q,k,v}``, ``…attn.proj``,
    ``…mlp.fc1/fc2``, ``…norm1/2``), so official files (and release 0.1 of ours, which used the
    official names) take one rename; Hugging Face's (``[cvt.]encoder.stages.{i}.layers.{j}.…``,
    the ``microsoft/cvt-*`` hub files) are renamed.
    The classifier's ``norm.*`` / ``head.*`` stay (unexpected keys) and our ``stages.3`` is absent
    (missing keys). Idempotent. The rules: :data:`~.conversion.CVT`.
    """
    return CVT(state_dict)
