"""mmvit_plugin.benchmark.multiscale: the sizes are mmdet's, and the measurement sees what a size
change costs. The command line (tools/benchmark_multiscale.py --quick, errors):
tests/test_tools/test_benchmark_multiscale.py."""
import math
import time

import numpy as np
import torch
import torch.nn as nn

from mmvit_plugin.benchmark import multiscale


def test_pipeline_sizes_are_mmdet_resize_padded_to_32():
    """Each size is what mmdet's own Resize (keep_ratio) gives, padded as DetDataPreprocessor
    (pad_size_divisor=32) pads it."""
    from mmdet.datasets.transforms import Resize
    shapes = [(480, 640), (360, 640), (640, 427)]
    expected = set()
    for height, width in shapes:
        for short in multiscale.SHORT_SIDES:
            resize = Resize(scale=(multiscale.MAX_LONG_SIDE, short), keep_ratio=True)
            h, w = resize(dict(img=np.zeros((height, width, 3), np.uint8),
                               img_shape=(height, width)))['img_shape']
            expected.add((math.ceil(h / 32) * 32, math.ceil(w / 32) * 32))
    sizes = multiscale.pipeline_sizes(shapes)
    assert set(sizes) == expected and len(sizes) == len(expected)
    areas = [h * w for h, w in sizes]
    assert areas == sorted(areas)
    # 16:9 reaches the long-side cap: its largest short sides give the same size
    assert sum(1 for h, w in sizes if max(h, w) == 1344) == 1


def test_spread_keeps_the_ends_and_count():
    items = list(range(54))
    picked = multiscale.spread(items, 8)
    assert len(picked) == len(set(picked)) == 8 and picked[0] == 0 and picked[-1] == 53
    assert multiscale.spread(items[:3], 8) == items[:3]


class RebuildsOnSizeChange(nn.Module):
    """A stand-in backbone with a one-entry size cache: 30 ms to rebuild, 5 ms to run."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.cache = {}

    def forward(self, x: torch.Tensor):
        size = tuple(x.shape[-2:])
        if size not in self.cache:
            self.cache = {size: torch.zeros(x.shape[-2:])}  # holds one size only
            time.sleep(0.030)
        time.sleep(0.005)
        return (x * self.weight, )


def test_measure_sees_what_a_rebuild_costs():
    model = RebuildsOnSizeChange()
    result = multiscale.measure(model, [(8, 8), (8, 16), (16, 16)], rounds=2, batch=1,
                                device=torch.device('cpu'))
    assert result['iterations_per_kind'] == 6
    assert result['ratio'] > 2 and result['paired_ratio_median'] > 2
    assert result['seconds_after_size_change'] > 0.03 > result['seconds_same_size']
    assert result['ratio'] == result['seconds_after_size_change'] / result['seconds_same_size']
    assert all(len(v['after_size_change']) == 2 for v in result['per_size'].values())


def test_held_tensor_bytes_counts_caches_in_attributes():
    model = RebuildsOnSizeChange()
    before = multiscale.held_tensor_bytes(model)
    assert before == model.weight.numel() * 4
    model(torch.zeros(1, 3, 16, 32))
    assert multiscale.held_tensor_bytes(model) == before + 16 * 32 * 4


def test_scaled_pipeline_sizes():
    """--quick's sizes (the pipeline scaled by 1/8, 3 of them) and the full pipeline's 54."""
    sizes, every_size = multiscale.scaled_pipeline_sizes(scale=multiscale.QUICK_SCALE, num_sizes=3)
    assert len(sizes) == 3 and sizes[0] == every_size[0] and sizes[-1] == every_size[-1]
    assert all(h % 32 == 0 and w % 32 == 0 for h, w in every_size)
    sizes, every_size = multiscale.scaled_pipeline_sizes()
    assert sizes == every_size and len(every_size) == 54
