"""mmcv's MultiScaleDeformableAttention on CPU (its PyTorch path), as Mask2Former's pixel decoder
and DINO use it on our backbones' features: forward against an independent bilinear-sampling
reference, backward against finite differences, and gradients reaching the backbone through
mmdet's MSDeformAttnPixelDecoder. The CUDA op against this path: the GPU check's
``ms_deform_attn`` step (tests/test_benchmark/test_gpu_check/test_checks.py)."""
import math

import pytest
import torch
from mmcv.ops import multi_scale_deform_attn as msda

from mmvit_plugin.benchmark.gpu_check.checks import ms_deform_attn_inputs
from mmvit_plugin.numerics import relative_error


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Small, overhead-bound tensors: one torch thread (conftest's ``one_torch_thread``)."""


def naive_ms_deform_attn(value, shapes, locations, weights):
    """Multi-scale deformable attention written from its definition, one sample at a time: for
    each query, head, level and point, bilinear interpolation of the level's value map at
    ``location * (W, H) - 0.5`` (pixel centres at integers; corners outside the map read 0),
    weighted and summed."""
    batch, _, heads, dims = value.shape
    _, queries, _, levels, points, _ = locations.shape
    out = value.new_zeros(batch, queries, heads, dims)
    starts = [0] + torch.cumsum(shapes.prod(1), 0).tolist()
    for b in range(batch):
        for q in range(queries):
            for h in range(heads):
                for level in range(levels):
                    height, width = shapes[level].tolist()
                    grid = value[b, starts[level]:starts[level + 1], h].view(height, width, dims)
                    for p in range(points):
                        x = locations[b, q, h, level, p, 0].item() * width - 0.5
                        y = locations[b, q, h, level, p, 1].item() * height - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        for yy, wy in ((y0, y0 + 1 - y), (y0 + 1, y - y0)):
                            for xx, wx in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
                                if 0 <= yy < height and 0 <= xx < width:
                                    out[b, q, h] += (weights[b, q, h, level, p] * wy * wx
                                                     * grid[yy, xx])
    return out.flatten(2)


def test_pytorch_path_is_multi_scale_deformable_attention():
    inputs = ms_deform_attn_inputs((40, 72), torch.Generator().manual_seed(0), batch=1,
                                   num_heads=2, head_dims=3, num_points=2)
    args = inputs['value'], inputs['shapes'], inputs['locations'], inputs['weights']
    expected = naive_ms_deform_attn(*args)
    assert relative_error(msda.multi_scale_deformable_attn_pytorch(*args), expected) < 1e-12
    # and in fp32, as training runs it
    fp32 = msda.multi_scale_deformable_attn_pytorch(
        args[0].float(), args[1], args[2].float(), args[3].float())
    assert relative_error(fp32, expected) < 1e-6


def test_pytorch_path_gradients_match_finite_differences():
    inputs = ms_deform_attn_inputs((24, 40), torch.Generator().manual_seed(1), batch=1,
                                   num_heads=2, head_dims=2, num_points=2)
    leaves = [inputs[k].clone().requires_grad_() for k in ('value', 'locations', 'weights')]

    def attention(value, locations, weights):
        return msda.multi_scale_deformable_attn_pytorch(value, inputs['shapes'], locations,
                                                        weights)

    assert torch.autograd.gradcheck(attention, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


def small_cswin():
    from mmvit_plugin.models.families import build_backbone
    return build_backbone('CSWin', dict(embed_dims=16, depths=(1, 1, 1, 1),
                                        num_heads=(2, 2, 4, 4)))


def pixel_decoder(in_channels):
    """mmseg's Mask2Former pixel decoder (mmdet's MSDeformAttnPixelDecoder) at a small width."""
    from mmdet.models.layers import MSDeformAttnPixelDecoder
    from mmengine.config import ConfigDict
    encoder = ConfigDict(num_layers=1, layer_cfg=dict(
        self_attn_cfg=dict(embed_dims=32, num_heads=4, num_levels=3, num_points=4,
                           im2col_step=64, dropout=0.0, batch_first=True, norm_cfg=None,
                           init_cfg=None),
        ffn_cfg=dict(embed_dims=32, feedforward_channels=64, num_fcs=2, ffn_drop=0.0,
                     act_cfg=dict(type='ReLU', inplace=True))))
    decoder = MSDeformAttnPixelDecoder(in_channels=in_channels, strides=[4, 8, 16, 32],
                                       feat_channels=32, out_channels=32, num_outs=3,
                                       norm_cfg=dict(type='GN', num_groups=8), encoder=encoder,
                                       positional_encoding=dict(num_feats=16, normalize=True))
    decoder.init_weights()
    return decoder


def test_backbone_features_through_the_mask2former_pixel_decoder_train_the_backbone(monkeypatch):
    """Our CSWin's four levels (odd input size, padded inside) into the pixel decoder: on CPU the
    module takes mmcv's PyTorch path, outputs have the expected shapes and are finite, and every
    trainable backbone parameter receives a finite, non-zero gradient through the deformable
    sampling (the sampling offsets too)."""
    calls = []
    real = msda.multi_scale_deformable_attn_pytorch

    def counted(*args):
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(msda, 'multi_scale_deformable_attn_pytorch', counted)
    torch.manual_seed(0)
    backbone = small_cswin().train()
    decoder = pixel_decoder(backbone.out_channels).train()
    # mmcv initialises the offset and weight projections to zero weights, so that at init no
    # gradient reaches the queries through them (the level embeddings would get none): weights as
    # after some training
    for module in decoder.modules():
        if isinstance(module, msda.MultiScaleDeformableAttention):
            torch.nn.init.normal_(module.sampling_offsets.weight, std=0.01)
            torch.nn.init.normal_(module.attention_weights.weight, std=0.01)
    images = torch.randn(2, 3, 61, 83)
    feats = backbone(images)
    mask_features, multi_scale = decoder(feats)
    assert tuple(mask_features.shape) == (2, 32) + tuple(feats[0].shape[-2:])
    assert [tuple(f.shape[-2:]) for f in multi_scale] == [tuple(f.shape[-2:]) for f in feats[:0:-1]]
    assert calls and calls[0][:3] == (2, sum(f.shape[-2] * f.shape[-1] for f in feats[1:]), 4)
    loss = mask_features.square().mean() + sum(f.square().mean() for f in multi_scale)
    loss.backward()
    for name, param in list(backbone.named_parameters()) + list(decoder.named_parameters()):
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    offsets = decoder.encoder.layers[0].self_attn.sampling_offsets.weight.grad
    assert offsets.abs().sum() > 0  # the gradient flows through the sampling locations


def test_pixel_decoder_is_deterministic_on_cpu_under_deterministic_algorithms():
    """The demos train with ``randomness=dict(deterministic=True)``: the PyTorch path has
    deterministic CPU kernels (no error), and two backward passes give identical gradients."""
    torch.manual_seed(0)
    backbone = small_cswin().train()
    decoder = pixel_decoder(backbone.out_channels).train()
    images = torch.randn(1, 3, 64, 64)
    grads = []
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        for _ in range(2):
            backbone.zero_grad(set_to_none=True)
            decoder.zero_grad(set_to_none=True)
            mask_features, multi_scale = decoder(backbone(images))
            (mask_features.sum() + sum(f.sum() for f in multi_scale)).backward()
            grads.append(torch.cat([p.grad.flatten() for p in backbone.parameters()]))
    finally:
        torch.use_deterministic_algorithms(previous)
    assert torch.equal(grads[0], grads[1])
