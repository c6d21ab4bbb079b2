"""mmvit_plugin.benchmark.gpu_check.run: a failed check is recorded, the other steps still run, the
report says FAILED with the reason, and the status is 1."""
import json

import torch

from mmvit_plugin.benchmark.gpu_check import EXIT_FAILED, STEPS, require, run_gpu_check
from mmvit_plugin.benchmark.gpu_check import run as gpu_run


def test_a_failing_check_is_reported_and_the_run_fails(tmp_path, monkeypatch):
    """A failed check is recorded (not raised), the other steps still run, the report says
    FAILED with the reason, and the exit status is 1."""
    def failing_step(settings):
        require(False, 'roi_align differs by 0.5')

    monkeypatch.setitem(STEPS, 'mmcv_ops', failing_step)
    # this process's settings stay: its thread count and mmengine's current logger
    monkeypatch.setattr(torch, 'set_num_threads', lambda n: None)
    monkeypatch.setattr(gpu_run, 'quiet_mm_logs', lambda: None)
    out = tmp_path / 'out'
    status = run_gpu_check(str(out), torch.device('cpu'), quick=True,
                           only=['environment', 'mmcv_ops'])
    assert status == EXIT_FAILED == 1
    report = json.loads((out / 'gpu_check.json').read_text())
    assert report['passed'] is False
    assert report['steps']['environment']['status'] == 'passed'
    assert report['steps']['mmcv_ops'] == dict(status='failed', error='roi_align differs by 0.5',
                                               seconds=report['steps']['mmcv_ops']['seconds'])
    table = (out / 'gpu_check.md').read_text()
    assert '**FAILED**' in table and '| mmcv_ops | failed |' in table
    assert 'roi_align differs by 0.5' in table
