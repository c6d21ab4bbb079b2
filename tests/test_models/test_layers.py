import pytest
import torch

from mmvit_plugin.models.layers import (ConvPatchEmbed, crop_padding, merge_heads, pad_to_multiple,
                                        quick_gelu, split_heads, window_partition, window_reverse)


@pytest.mark.parametrize('centred', [False, True])
def test_pad_and_crop(centred):
    x = torch.randn(2, 9, 13, 4)
    padded, pads = pad_to_multiple(x, (7, 4), centred=centred)
    assert padded.shape == (2, 14, 16, 4)
    top, bottom, left, right = pads
    assert (top, bottom, left, right) == ((2, 3, 1, 2) if centred else (0, 5, 0, 3))
    assert padded[:, :top].abs().sum() == 0 and padded[:, padded.shape[1] - bottom:].abs().sum() == 0
    torch.testing.assert_close(crop_padding(padded, pads), x)


def test_window_partition_round_trip_and_order():
    x = torch.arange(2 * 4 * 6 * 1, dtype=torch.float).view(2, 4, 6, 1)
    windows = window_partition(x, (2, 3))
    assert windows.shape == (2 * 4, 6, 1)
    # The second window of the first image is rows 0-1, columns 3-5.
    torch.testing.assert_close(windows[1, :, 0], x[0, 0:2, 3:6, 0].flatten())
    torch.testing.assert_close(window_reverse(windows, (2, 3), 4, 6), x)
    # Stripes are windows spanning a whole side.
    assert window_partition(x, (4, 2)).shape == (2 * 3, 8, 1)


def test_heads_round_trip():
    x = torch.randn(3, 10, 12)
    h = split_heads(x, 4)
    assert h.shape == (3, 4, 10, 3)
    torch.testing.assert_close(h[:, 1], x[..., 3:6])
    torch.testing.assert_close(merge_heads(h), x)


def test_conv_patch_embed_pads_to_stride():
    embed = ConvPatchEmbed(3, 8, kernel_size=4, stride=4, pad_to_stride=True)
    assert embed(torch.randn(1, 3, 9, 13)).shape == (1, 3, 4, 8)
    embed = ConvPatchEmbed(3, 8, kernel_size=7, stride=4, padding=2)
    assert embed(torch.randn(1, 3, 97, 131)).shape == (1, 24, 33, 8)  # floor((s - 3) / 4) + 1


def test_quick_gelu():
    x = torch.linspace(-3, 3, 7)
    torch.testing.assert_close(quick_gelu(x), x * torch.sigmoid(1.702 * x))
