"""MPViT backbone, numerically the official dense-prediction variant.

Lee et al., "MPViT: Multi-Path Vision Transformer for Dense Prediction", CVPR 2022.

Each stage embeds its input along several paths (chained depthwise-separable convolutions, so
every path sees a larger receptive field than the one before), runs one transformer encoder per
path and a convolutional "local" path beside them, and fuses everything with a 1x1 convolution.
The encoders use factorized attention, ``q (softmax_N(k)^T v)``, which is linear in the number of
tokens, so there is no window and no size constraint: strided convolutions give ceil sizes.
It normalises the keys over the tokens, not the scores ``q kᵀ`` over the keys: it is not
``softmax(q kᵀ) v`` and has no ``F.scaled_dot_product_attention`` form, so unlike the other
backbones MPViT has no ``attn_impl`` switch (it is plain matrix products everywhere).

Layout: token sequences ``(B, N, C)`` are the channels-last memory of ``(B, C, H, W)`` maps, so the
convolutions inside the encoders (position encodings) and the moves between tokens and maps are
views rather than copies. Module names follow the official keys, except that the shared position
encodings are stored once per encoder (the official files repeat them under every layer; see
:func:`convert_mpvit_checkpoint`).
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.registry import MODELS

from ...checkpoint import StateDict
from ..layers import (DropPath, Mlp, depthwise_conv2d, drop_path_schedule, nchw_to_tokens,
                      tokens_to_nchw)
from .base import PyramidBackbone
from .conversion import MPVIT, mpvit_checkpoint_layout

#: Convolutional relative position encoding: (depthwise kernel, number of heads) groups.
CRPE_WINDOWS = ((3, 2), (5, 3), (7, 3))
#: Heads at least this wide run per-head attention products; narrower ones one masked product.
PER_HEAD_MIN_DIMS = 16


def build_norm(norm_cfg: dict, channels: int) -> nn.Module:
    """The norm layer of an mm-style ``norm_cfg`` (``BN``, ``SyncBN``, ...) via mmcv."""
    return build_norm_layer(norm_cfg, channels)[1]


class ConvBN(nn.Module):
    """Conv2d (no bias) → BatchNorm → optional Hardswish."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 norm_cfg: dict = dict(type='BN'), act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                              bias=False)
        self.bn = build_norm(norm_cfg, out_channels)
        self.act = nn.Hardswish() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SeparableConvBN(nn.Module):
    """Depthwise 3×3 (stride 1 or 2, no bias) → pointwise 1×1 (no bias) → BatchNorm → Hardswish."""

    def __init__(self, channels: int, stride: int, norm_cfg: dict) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)
        self.pwconv = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = build_norm(norm_cfg, channels)
        self.act = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.pwconv(self.dwconv(x))))


class PatchEmbedPath(nn.Module):
    """One path of the multi-scale patch embedding: a :class:`SeparableConvBN` (``patch_conv``)."""

    def __init__(self, channels: int, stride: int, norm_cfg: dict) -> None:
        super().__init__()
        self.patch_conv = SeparableConvBN(channels, stride, norm_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_conv(x)


class MultiPathPatchEmbed(nn.Module):
    """``num_paths`` chained embeddings: path ``p`` embeds path ``p - 1``'s output; the first one
    halves the resolution when ``downsample`` is set. Returns every path's output."""

    def __init__(self, channels: int, num_paths: int, downsample: bool, norm_cfg: dict) -> None:
        super().__init__()
        self.patch_embeds = nn.ModuleList([
            PatchEmbedPath(channels, 2 if downsample and p == 0 else 1, norm_cfg)
            for p in range(num_paths)
        ])

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = []
        for embed in self.patch_embeds:
            x = embed(x)
            outs.append(x)
        return outs


class ConvPosEnc(nn.Module):
    """Convolutional position encoding: ``x + dwconv3x3(x)`` on the token map.

    Computed as one depthwise convolution whose kernel has 1 added at its centre (the residual).
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, kernel_size, 1, kernel_size // 2, groups=channels)
        identity = torch.zeros(1, 1, kernel_size, kernel_size)
        identity[..., kernel_size // 2, kernel_size // 2] = 1
        self.register_buffer('identity', identity, persistent=False)

    def forward(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        weight = self.proj.weight + self.identity.to(self.proj.weight.dtype)
        x = F.conv2d(tokens_to_nchw(x, size), weight, self.proj.bias,
                     padding=self.proj.padding, groups=self.proj.groups)
        return nchw_to_tokens(x)


class ConvRelPosEnc(nn.Module):
    """Convolutional relative position encoding ``q ⊙ dwconv(v)``.

    The channels of ``v`` are split into head groups, each with its own depthwise kernel size
    (:data:`CRPE_WINDOWS`: 3×3 for 2 heads, 5×5 for 3, 7×7 for 3). The convolutions stay separate
    modules (``conv_list``, as in the official files); the forward pass runs them as one depthwise
    convolution whose smaller kernels are zero-padded to the largest size, through
    :func:`~mmvit_plugin.models.layers.depthwise_conv2d` (oneDNN's own weight gradient of a 7×7
    depthwise kernel is slow): MPViT-S forward + backward at 512², 2 threads, took 1.03× (ratio
    of medians; 1.08× paired) longer with plain ``F.conv2d``.

    Args:
        head_dims: channels per head.
        windows: ``(kernel, heads)`` pairs; the heads must add up to the encoder's heads.
    """

    def __init__(self, head_dims: int, windows: Sequence[Tuple[int, int]] = CRPE_WINDOWS) -> None:
        super().__init__()
        self.max_kernel = max(k for k, _ in windows)
        self.conv_list = nn.ModuleList([
            nn.Conv2d(heads * head_dims, heads * head_dims, k, 1, k // 2, groups=heads * head_dims)
            for k, heads in windows
        ])

    def merged_kernel(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """One ``(C, 1, K, K)`` depthwise kernel (smaller kernels centred, zero-padded) and bias."""
        weights = []
        for conv in self.conv_list:
            pad = (self.max_kernel - conv.kernel_size[0]) // 2
            weights.append(F.pad(conv.weight, (pad, pad, pad, pad)) if pad else conv.weight)
        return torch.cat(weights), torch.cat([conv.bias for conv in self.conv_list])

    def forward(self, q: torch.Tensor, v: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        """``q``, ``v``: ``(B, N, C)`` (heads side by side in C); returns ``q * dwconv(v)``."""
        weight, bias = self.merged_kernel()
        v = depthwise_conv2d(tokens_to_nchw(v, size), weight, bias, self.max_kernel // 2)
        return q * nchw_to_tokens(v)


class FactorizedAttention(nn.Module):
    """Factorized attention ``scale · q (softmax_N(k)^T v) + q ⊙ dwconv(v)`` per head → ``proj``.

    The softmax runs over the tokens of ``k``, not over ``q kᵀ``: this is not ``softmax(q kᵀ) v``,
    so there is no ``scaled_dot_product_attention`` form of it and no ``attn_impl`` switch.
    With heads of fewer than :data:`PER_HEAD_MIN_DIMS` channels (MPViT's first stage, 8 per head)
    the per-head ``kᵀv`` products are computed as one ``C × C`` product masked to its block
    diagonal: products of 8 channels run far below the GEMM peak, so the 8× larger product is
    faster (stage 1 of MPViT-S at 512², fwd+bwd, 2 threads: 18.2 ms against 23.3 ms per head).
    Wider heads take the per-head products, strided views of the ``(B, N, C)`` tensors (stages
    2-4: 9.9 / 3.1 / 0.8 ms against 10.6 / 5.6 / 2.2 ms masked; 28.6 / 13.6 / 3.8 against
    50.9 / 24.8 / 8.6 ms at 800×1333).

    Args:
        embed_dims: channels.
        num_heads: heads.
        qkv_bias: bias in the qkv projection.
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = self.head_dims**-0.5
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.block_diagonal = self.head_dims < PER_HEAD_MIN_DIMS
        if self.block_diagonal:
            heads = torch.arange(embed_dims) // self.head_dims
            # 0/1, exact in any dtype; the scale is applied in forward so that a float64 model
            # scales in float64 (a scale folded in here would stay rounded to float32)
            self.register_buffer('head_mask', (heads[:, None] == heads[None, :]).float(),
                                 persistent=False)

    def forward(self, x: torch.Tensor, size: Tuple[int, int], crpe: ConvRelPosEnc) -> torch.Tensor:
        # Three products with row blocks of the qkv weight instead of one: q, k and v come out
        # contiguous, so the softmax and the depthwise convolution need no copies.
        weights = self.qkv.weight.chunk(3)
        biases = self.qkv.bias.chunk(3) if self.qkv.bias is not None else (None, ) * 3
        q, k, v = (F.linear(x, w, b) for w, b in zip(weights, biases))
        k = k.softmax(dim=1)  # over the tokens
        if self.block_diagonal:
            context = torch.bmm(k.transpose(1, 2), v)  # (B, C, C)
            context = context * (self.head_mask.to(context.dtype) * self.scale)
            return self.proj(torch.baddbmm(crpe(q, v, size), q, context))
        heads = (self.num_heads, self.head_dims)
        context = torch.einsum('bnhk,bnhv->bhkv', k.unflatten(-1, heads), v.unflatten(-1, heads))
        attn = torch.einsum('bnhk,bhkv->bnhv', q.unflatten(-1, heads), context * self.scale)
        # the sum takes crpe's contiguous layout, so flatten is a view
        return self.proj((crpe(q, v, size).unflatten(-1, heads) + attn).flatten(2))


class MHCALayer(nn.Module):
    """One encoder layer: shared ConvPosEnc → LN → factorized attention (+ shared ConvRelPosEnc) →
    residual; LN → MLP (GELU) → residual.

    Args:
        embed_dims, num_heads: as for :class:`FactorizedAttention`.
        mlp_ratio: MLP hidden width over ``embed_dims``.
        drop_path: stochastic depth rate.
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float,
                 drop_path: float = 0.) -> None:
        super().__init__()
        self.factoratt_crpe = FactorizedAttention(embed_dims, num_heads)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)

    def forward(self, x: torch.Tensor, size: Tuple[int, int], cpe: ConvPosEnc,
                crpe: ConvRelPosEnc) -> torch.Tensor:
        x = cpe(x, size)
        x = x + self.drop_path(self.factoratt_crpe(self.norm1(x), size, crpe))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class MHCAEncoder(nn.Module):
    """The transformer encoder of one path: layers sharing one ConvPosEnc and one ConvRelPosEnc."""

    def __init__(self, embed_dims: int, num_layers: int, num_heads: int, mlp_ratio: float,
                 drop_paths: Sequence[float], crpe_windows: Sequence[Tuple[int, int]]) -> None:
        super().__init__()
        self.cpe = ConvPosEnc(embed_dims)
        self.crpe = ConvRelPosEnc(embed_dims // num_heads, crpe_windows)
        self.MHCA_layers = nn.ModuleList([
            MHCALayer(embed_dims, num_heads, mlp_ratio, drop_paths[i]) for i in range(num_layers)
        ])


class InvertedResidual(nn.Module):
    """The local path: 1×1 Conv-BN-Hardswish → dw 3×3 (no bias) → BN → Hardswish → 1×1 Conv-BN,
    plus the input."""

    def __init__(self, channels: int, norm_cfg: dict) -> None:
        super().__init__()
        self.conv1 = ConvBN(channels, channels, norm_cfg=norm_cfg)
        self.dwconv = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
        self.norm = build_norm(norm_cfg, channels)
        self.act = nn.Hardswish()
        self.conv2 = ConvBN(channels, channels, norm_cfg=norm_cfg, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.norm(self.dwconv(self.conv1(x)))))


class MPViTStage(nn.Module):
    """The multi-path embedding (``patch_embed``, halving the resolution when ``downsample``), one
    encoder per path, the local path, and the 1×1 Conv-BN-Hardswish ``aggregate``. (The official
    model keeps the embeddings and the rest in two lists, ``patch_embed_stages`` and
    ``mhca_stages``; the conversion maps them here.)"""

    def __init__(self, embed_dims: int, out_channels: int, num_layers: int, num_heads: int,
                 mlp_ratio: float, num_paths: int, downsample: bool, drop_paths: Sequence[float],
                 crpe_windows: Sequence[Tuple[int, int]], norm_cfg: dict) -> None:
        super().__init__()
        self.patch_embed = MultiPathPatchEmbed(embed_dims, num_paths, downsample, norm_cfg)
        self.mhca_blks = nn.ModuleList([
            MHCAEncoder(embed_dims, num_layers, num_heads, mlp_ratio, drop_paths, crpe_windows)
            for _ in range(num_paths)
        ])
        self.InvRes = InvertedResidual(embed_dims, norm_cfg)
        self.aggregate = ConvBN(embed_dims * (num_paths + 1), out_channels, norm_cfg=norm_cfg)


@MODELS.register_module(name='MPViT')
class MPViT(PyramidBackbone):
    """MPViT backbone (``type='MPViT'``), a 4-level pyramid (strides 4–32) from any input size.

    Its factorized attention is not ``softmax(q kᵀ) v`` (see :class:`FactorizedAttention`), so,
    unlike Swin, CSWin and CvT, it takes no ``attn_impl``: there is no SDPA form to switch to.

    Args:
        arch: ``'tiny'``, ``'xsmall'``, ``'small'``, ``'base'``, or a dict with ``embed_dims``
            (4 widths), ``num_layers``, ``num_heads``, ``mlp_ratios`` and ``num_paths`` (4 each).
            Level ``i`` has ``embed_dims[i + 1]`` channels (the last level ``embed_dims[3]``), e.g.
            128, 216, 288, 288 for ``'small'``; see :attr:`num_features`.
        in_channels: input channels.
        crpe_windows: ``(kernel, heads)`` groups of the convolutional relative position encoding;
            the heads must add up to each stage's ``num_heads``. Official: 3/5/7 over 2/3/3 heads.
        drop_path_rate: stochastic depth, rising linearly over all layers (of one path) up to this
            rate; the official recipes use 0.1 (tiny, xsmall), 0.2 (small), 0.4 (base).
        norm_cfg: norm of the convolutions, ``dict(type='BN')`` or ``dict(type='SyncBN')`` (the
            segmentation recipe), built with mmcv's ``build_norm_layer``.
        norm_eval: keep the BatchNorm layers in eval mode (frozen statistics) while training.
        out_indices: levels to return (0..3, strides 4..32).
        frozen_stages: ``-1`` none; ``0`` the stem; ``k`` also stages ``0..k-1`` (embedding and
            encoders).
        with_cp: what the backward pass recomputes instead of storing: ``False``, ``'act'`` (the
            encoder MLPs' GELU) or ``True`` (every encoder layer and local path, non-reentrant);
            see :class:`~mmvit_plugin.models.backbones.base.PyramidBackbone`.
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=PATH)`` loads an
            official classification release (``{'model': ...}``), an official or mmseg/mmdet dense
            checkpoint (flat or ``state_dict``, with or without ``backbone.``) or a converted file.
    """

    arch_zoo = {
        'tiny': dict(embed_dims=(64, 96, 176, 216), num_layers=(1, 2, 4, 1),
                     num_heads=(8, 8, 8, 8), mlp_ratios=(2, 2, 2, 2), num_paths=(2, 3, 3, 3)),
        'xsmall': dict(embed_dims=(64, 128, 192, 256), num_layers=(1, 2, 4, 1),
                       num_heads=(8, 8, 8, 8), mlp_ratios=(4, 4, 4, 4), num_paths=(2, 3, 3, 3)),
        'small': dict(embed_dims=(64, 128, 216, 288), num_layers=(1, 3, 6, 3),
                      num_heads=(8, 8, 8, 8), mlp_ratios=(4, 4, 4, 4), num_paths=(2, 3, 3, 3)),
        'base': dict(embed_dims=(128, 224, 368, 480), num_layers=(1, 3, 8, 3),
                     num_heads=(8, 8, 8, 8), mlp_ratios=(4, 4, 4, 4), num_paths=(2, 3, 3, 3)),
    }
    arch_keys = ('embed_dims', 'num_layers', 'num_heads', 'mlp_ratios', 'num_paths')

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 in_channels: int = 3,
                 crpe_windows: Sequence[Tuple[int, int]] = CRPE_WINDOWS,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='BN'),
                 norm_eval: bool = False,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 with_cp: Union[bool, str] = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(in_channels=in_channels, out_indices=out_indices,
                         frozen_stages=frozen_stages, norm_eval=norm_eval, with_cp=with_cp,
                         init_cfg=init_cfg)
        arch = self.resolve_arch(arch)
        embed_dims, num_layers, num_heads, mlp_ratios, num_paths = (
            [arch[k]] * 4 if isinstance(arch[k], (int, float)) else list(arch[k])
            for k in self.arch_keys)
        crpe_windows = tuple((int(k), int(h)) for k, h in crpe_windows)
        self.check_heads(embed_dims, num_heads)
        for heads in num_heads:
            if sum(h for _, h in crpe_windows) != heads:
                raise ValueError(f'MPViT: crpe_windows {crpe_windows} cover '
                                 f'{sum(h for _, h in crpe_windows)} heads, the stage has {heads}')
        if any(k % 2 == 0 for k, _ in crpe_windows):
            raise ValueError(f'MPViT: crpe_windows kernels must be odd, got {crpe_windows}')
        self.num_features = [embed_dims[i + 1] for i in range(3)] + [embed_dims[3]]

        self.stem = nn.Sequential(
            ConvBN(in_channels, embed_dims[0] // 2, 3, 2, norm_cfg),
            ConvBN(embed_dims[0] // 2, embed_dims[0], 3, 2, norm_cfg))
        rates = drop_path_schedule(num_layers, drop_path_rate)
        self.stages = nn.ModuleList([
            MPViTStage(embed_dims[i], self.num_features[i], num_layers[i], num_heads[i],
                       mlp_ratios[i], num_paths[i], downsample=i > 0, drop_paths=rates[i],
                       crpe_windows=crpe_windows, norm_cfg=norm_cfg) for i in range(4)
        ])
        self.apply(self.init_module_weights)
        self.apply(self._init_conv_bn)

    @staticmethod
    def _init_conv_bn(m: nn.Module) -> None:
        """He (fan-out) init of the convolutions that feed a BatchNorm (those without bias)."""
        if isinstance(m, nn.Conv2d) and m.bias is None:
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0, (2. / fan_out)**0.5)

    def stage_modules(self, stage: int) -> List[nn.Module]:
        if stage < 0:
            return [self.stem]
        return [self.stages[stage]]

    def stage_blocks(self) -> List[List[List[nn.Module]]]:
        # The paths of a stage run side by side: their l-th layers share one depth.
        return [[[encoder.MHCA_layers[layer] for encoder in stage.mhca_blks]
                 for layer in range(len(stage.mhca_blks[0].MHCA_layers))]
                for stage in self.stages]

    def forward_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``i``: multi-path embedding, encoders and local path, aggregation."""
        stage = self.stages[i]
        inputs = stage.patch_embed(x)
        outs = [self.run_block(stage.InvRes, inputs[0])]
        for x, encoder in zip(inputs, stage.mhca_blks):
            size = x.shape[-2:]
            x = nchw_to_tokens(x)
            for layer in encoder.MHCA_layers:
                x = self.run_block(layer, x, size, encoder.cpe, encoder.crpe)
            outs.append(tokens_to_nchw(x, size))
        return stage.aggregate(torch.cat(outs, dim=1))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.check_input(x)
        x = self.stem(x.contiguous(memory_format=torch.channels_last))
        outs = []
        for i in range(4):  # every stage runs, so all parameters get gradients (DDP)
            x = self.forward_stage(i, x)
            if i in self.out_indices:
                outs.append(x.contiguous())
        return tuple(outs)

    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        return convert_mpvit_checkpoint(state_dict)

    def checkpoint_layout(self, state_dict: StateDict) -> str:
        return mpvit_checkpoint_layout(state_dict)


def convert_mpvit_checkpoint(state_dict: StateDict) -> StateDict:
    """Official MPViT weights (classification or dense) to :class:`MPViT`'s keys.

    The official model keeps stage ``i`` in two lists (``patch_embed_stages.{i}``,
    ``mhca_stages.{i}``), ours in one module (``stages.{i}.patch_embed``, ``stages.{i}``; release
    0.1 of ours used the official lists). The official modules hold each encoder's shared
    ConvPosEnc / ConvRelPosEnc under ``mhca_blks.{p}.{cpe,crpe}`` and again under every layer
    (``MHCA_layers.{l}.cpe``, ``.crpe`` and ``.factoratt_crpe.crpe``). All copies must be equal;
    they are loaded once. The classification head (``cls_head.*``) is dropped. Our own layout
    passes through unchanged.

    Raises:
        CheckpointError: when copies of a shared tensor disagree (naming the keys).
    """
    return MPVIT(state_dict)
