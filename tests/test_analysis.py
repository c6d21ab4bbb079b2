import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvit_plugin.analysis import count_flops
from mmvit_plugin.models.backbones.cswin import CSWin
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
