"""tools/benchmark_multiscale.py: the sizes are mmdet's, the measurement sees what a size change
costs, and a --quick run reports it."""
import importlib.util
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'benchmark_multiscale.py'

_spec = importlib.util.spec_from_file_location('benchmark_multiscale', TOOL)
multiscale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(multiscale)


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


def test_quick_run_reports_both_kinds_and_the_ratio(tmp_path):
    out = tmp_path / 'ms.json'
    proc = subprocess.run([sys.executable, str(TOOL), '--quick', '--threads', '1', '--json',
                           str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report['model'] == 'swin:tiny' and len(report['sizes']) == 3
    assert all(h % 32 == 0 and w % 32 == 0 for h, w in report['sizes'])
    assert report['iterations_per_kind'] == 3
    for summary in (report, report['cpu_time']):  # wall clock, and process CPU time on CPU
        assert summary['ratio'] == pytest.approx(summary['seconds_after_size_change']
                                                 / summary['seconds_same_size'])
        assert all(len(v['same_size']) == 1 for v in summary['per_size'].values())
    # Swin keeps nothing per input size
    assert report['held_tensor_mb_after'] == report['held_tensor_mb_before'] > 0
    assert 'wall clock: after a size change' in proc.stdout
    assert 'process CPU time: after a size change' in proc.stdout and 'ratio:' in proc.stdout


@pytest.mark.parametrize('argv, message', [
    (['--model', 'vit:tiny', '--quick'], 'unknown model'),
    (['--image-shapes', '640', '--quick'], 'expected HEIGHTxWIDTH'),
    (['--scale', '2'], '--scale must be in (0, 1]'),
    (['--image-shapes', '100x100', '--num-sizes', '1', '--scale', '0.01'], 'a size change needs'),
    (['--device', 'gpu0', '--quick'], 'is not a torch device'),
])
def test_bad_input_is_a_clear_error(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(torch, 'set_num_threads', lambda n: None)  # keep this process's threads
    with pytest.raises(SystemExit) as exc:
        multiscale.main(argv)
    assert exc.value.code not in (0, None)
    assert message in f'{exc.value.code} {capsys.readouterr().err}'
