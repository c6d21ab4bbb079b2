import pytest
import torch
import torch.nn.functional as F

from mmvit_plugin.models.layers import (ConvPatchEmbed, crop_padding, depthwise_conv2d,
                                        drop_path_schedule, merge_heads, pad_to_multiple,
                                        quick_gelu, split_heads, window_partition, window_reverse)


@pytest.mark.parametrize('centred', [False, True])
def test_pad_and_crop(centred):
    x = torch.randn(2, 9, 13, 4)
    padded, pads = pad_to_multiple(x, (7, 4), centred=centred)
    assert padded.shape == (2, 14, 16, 4)
    top, bottom, left, right = pads
    assert (top, bottom, left, right) == ((2, 3, 1, 2) if centred else (0, 5, 0, 3))
    assert padded[:, :top].abs().sum() == 0 and padded[:, padded.shape[1] - bottom:].abs().sum() == 0
    assert torch.equal(crop_padding(padded, pads), x)


def test_window_partition_round_trip_and_order():
    x = torch.arange(2 * 4 * 6 * 1, dtype=torch.float).view(2, 4, 6, 1)
    windows = window_partition(x, (2, 3))
    assert windows.shape == (2 * 4, 6, 1)
    # The second window of the first image is rows 0-1, columns 3-5.
    assert torch.equal(windows[1, :, 0], x[0, 0:2, 3:6, 0].flatten())
    assert torch.equal(window_reverse(windows, (2, 3), 4, 6), x)
    # Stripes are windows spanning a whole side.
    assert window_partition(x, (4, 2)).shape == (2 * 3, 8, 1)


def test_heads_round_trip():
    x = torch.randn(3, 10, 12)
    h = split_heads(x, 4)
    assert h.shape == (3, 4, 10, 3)
    assert torch.equal(h[:, 1], x[..., 3:6])
    assert torch.equal(merge_heads(h), x)


def test_conv_patch_embed_pads_to_stride():
    embed = ConvPatchEmbed(3, 8, kernel_size=4, stride=4, pad_to_stride=True)
    assert embed(torch.randn(1, 3, 9, 13)).shape == (1, 3, 4, 8)
    embed = ConvPatchEmbed(3, 8, kernel_size=7, stride=4, padding=2)
    assert embed(torch.randn(1, 3, 97, 131)).shape == (1, 24, 33, 8)  # floor((s - 3) / 4) + 1


def test_quick_gelu():
    x = torch.linspace(-3, 3, 7)
    assert torch.equal(quick_gelu(x), x * torch.sigmoid(1.702 * x))  # the same elementwise ops


def test_drop_path_schedule():
    # one ramp over all blocks (Swin, CSWin, MPViT), split per stage
    flat = torch.linspace(0, 0.3, 7).tolist()
    assert drop_path_schedule((2, 1, 3, 1), 0.3) == [flat[:2], flat[2:3], flat[3:6], flat[6:]]
    # one ramp per stage (CvT)
    assert drop_path_schedule((1, 2, 10), (0., 0., 0.1)) == [
        [0.], [0., 0.], torch.linspace(0, 0.1, 10).tolist()]
    assert [len(r) for r in drop_path_schedule((2, 0, 1), 0.1)] == [2, 0, 1]
    with torch.device('meta'):  # plain floats, whatever the default device
        assert drop_path_schedule((1, 1), 0.5) == [[0.], [0.5]]


@pytest.mark.numerics
@pytest.mark.parametrize('batch, kernel, bias, channels_last',
                         [(1, 7, True, True), (2, 5, False, True), (3, 7, True, False)])
def test_depthwise_conv2d_gradients(batch, kernel, bias, channels_last):
    """The weight gradient computed as a correlation matches autograd's through F.conv2d."""
    torch.manual_seed(0)
    x = torch.randn(batch, 12, 11, 17)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight, b = torch.randn(12, 1, kernel, kernel), torch.randn(12) if bias else None
    grad = torch.randn(batch, 12, 11, 17)
    leaves = [t.requires_grad_() for t in (x, weight, b) if t is not None]
    ours = depthwise_conv2d(x, weight, b, kernel // 2)
    assert ours.grad_fn.name() == '_DepthwiseConv2dBackward'
    expected = F.conv2d(x, weight, b, padding=kernel // 2, groups=12)
    assert torch.equal(ours, expected)
    for name, a, e in zip(['input', 'weight', 'bias'], torch.autograd.grad(ours, leaves, grad),
                          torch.autograd.grad(expected, leaves, grad)):
        assert a.shape == e.shape
        assert (a - e).abs().max() <= 1e-5 * e.abs().max(), name


def test_depthwise_conv2d_plain_where_it_does_not_pay():
    """3x3 kernels (oneDNN's own depthwise gradient is faster), no gradients, float64, autocast,
    jit tracing: plain F.conv2d."""
    x = torch.randn(1, 4, 6, 6, requires_grad=True)
    assert depthwise_conv2d(x, torch.randn(4, 1, 3, 3), None, 1).grad_fn.name() != \
        '_DepthwiseConv2dBackward'
    with torch.no_grad():
        assert depthwise_conv2d(x, torch.randn(4, 1, 7, 7), None, 3).grad_fn is None
    assert depthwise_conv2d(x.double(), torch.randn(4, 1, 7, 7, dtype=torch.float64), None,
                            3).grad_fn.name() != '_DepthwiseConv2dBackward'
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = depthwise_conv2d(x, torch.randn(4, 1, 7, 7), None, 3)
    assert out.dtype == torch.bfloat16 and out.grad_fn.name() != '_DepthwiseConv2dBackward'
    traced = torch.jit.trace(lambda x, weight: depthwise_conv2d(x, weight, None, 3),
                             (x.detach(), torch.randn(4, 1, 7, 7, requires_grad=True)))
    assert 'aten::_convolution' in str(traced.graph) and 'PythonOp' not in str(traced.graph)
