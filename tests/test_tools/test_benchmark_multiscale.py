"""tools/benchmark_multiscale.py's command line: a --quick run reports both kinds of iteration and
their ratio; bad input is a clear error (the measurement:
tests/test_benchmark/test_multiscale.py)."""
import json

import pytest
import torch

from tool_cli import run_tool, run_tool_main


def test_quick_run_reports_both_kinds_and_the_ratio(tmp_path):
    out = tmp_path / 'ms.json'
    proc = run_tool('benchmark_multiscale', '--quick', '--threads', '1', '--json', out,
                    timeout=600)
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
    try:
        status = run_tool_main('benchmark_multiscale', argv)  # a usage error: status 2
    except SystemExit as exc:  # an error: its message
        status = exc.code
    assert status not in (0, None)
    assert message in f'{status} {capsys.readouterr().err}'
