"""mmvit_plugin.benchmark.flops: attention and baddbmm counted, structural zeros left out."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvit_plugin.benchmark.flops import analyze_flops, count_flops
from mmvit_plugin.models.backbones.cswin import CSWin
from mmvit_plugin.models.backbones.mpvit import (CRPE_WINDOWS, ConvRelPosEnc, FactorizedAttention,
                                                  MPViT)
from mmvit_plugin.models.backbones.swin import Swin


class Attention(nn.Module):

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


def test_sdpa_is_counted():
    q = torch.randn(2, 3, 10, 8)
    k = torch.randn(2, 3, 7, 8)
    v = torch.randn(2, 3, 7, 5)
    total, by_op = count_flops(Attention(), (q, k, v))
    assert total == 2 * 3 * 10 * 7 * (8 + 5)
    assert by_op == {'scaled_dot_product_attention': total}


def test_swin_flops_include_attention():
    # Swin computes attention with explicit matmuls (faster than SDPA on CPU for 49-token windows)
    model = Swin(dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))).eval()
    total, by_op = count_flops(model, (torch.randn(1, 3, 56, 56), ))
    # stage 1: 14x14 tokens in 4 windows of 49, one head of 16 channels: q·kᵀ and attn·v
    assert by_op['matmul'] >= 4 * 49 * 49 * 32
    assert total > by_op['matmul']


def test_cswin_flops_include_sdpa_attention():
    model = CSWin(dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 2, 2))).eval()
    total, by_op = count_flops(model, (torch.randn(1, 3, 56, 56), ))
    # stage 1 (14x14, split 1): two branches of 8 channels, 14 stripes of 14 tokens each
    assert by_op['scaled_dot_product_attention'] >= 2 * 14 * 14 * 14 * 16
    assert total > by_op['scaled_dot_product_attention']


class BatchedProduct(nn.Module):

    def forward(self, base, a, b):
        return torch.baddbmm(base, a, b)


def test_baddbmm_is_counted():
    total, by_op = count_flops(BatchedProduct(), (torch.randn(2, 5, 3), torch.randn(2, 5, 4),
                                                  torch.randn(2, 4, 3)))
    assert total == by_op['baddbmm'] == 2 * 5 * 4 * 3


class MPViTAttention(nn.Module):
    """One MPViT factorized attention with its convolutional relative position encoding."""

    def __init__(self, channels, heads):
        super().__init__()
        self.attn = FactorizedAttention(channels, heads)
        self.crpe = ConvRelPosEnc(channels // heads)

    def forward(self, x):
        return self.attn(x, (6, 5), self.crpe)


@pytest.mark.parametrize('channels', [16, 128])
def test_mpvit_structural_zeros_are_left_out(channels):
    """The count is the per-head / per-group arithmetic of the official implementation, although
    ours runs one zero-padded 7x7 kernel and, for heads narrower than 16 channels, one masked
    C x C product."""
    heads, tokens = 8, 30
    head_dims = channels // heads
    model = MPViTAttention(channels, heads).eval()
    assert model.attn.block_diagonal == (head_dims < 16)
    report = analyze_flops(model, (torch.randn(2, tokens, channels), ))
    qkv, proj = tokens * channels * 3 * channels, tokens * channels * channels
    products = 2 * tokens * channels * head_dims  # softmax(k)ᵀ v and q (kᵀ v), per head
    crpe = tokens * head_dims * sum(heads_ * kernel**2 for kernel, heads_ in CRPE_WINDOWS)
    assert report.total == 2 * (qkv + proj + products + crpe)
    executed_products = 2 * tokens * channels * (channels if model.attn.block_diagonal else head_dims)
    executed = 2 * (qkv + proj + executed_products + tokens * channels * 7**2)
    assert report.structural_zeros == executed - report.total
    assert report.by_operator['conv'] == 2 * crpe
    # the tracer gives ops to the module whose body runs them (crpe's, though attn calls it)
    assert report.by_child == {'attn': report.total - 2 * crpe, 'crpe': 2 * crpe}


def test_mpvit_counts_add_up_over_modules():
    model = MPViT(arch='tiny').eval()
    report = analyze_flops(model, (torch.randn(1, 3, 64, 96), ))
    assert report.structural_zeros > 0
    assert sum(report.by_child.values()) == report.total == sum(report.by_operator.values())
