"""scripts/gpu_check.sh and tools/gpu_check.py without a GPU: clear refusals, the command line's
errors, and (slow) a whole ``--device cpu --quick`` run writing its report. The steps:
tests/test_benchmark/test_gpu_check/."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmvit_plugin.benchmark.gpu_check import EXIT_REFUSED, STEPS
from tool_cli import REPO, run_tool, run_tool_main

SCRIPT = REPO / 'scripts' / 'gpu_check.sh'
VENV = Path(sys.executable).parents[1]


def run(command, **env):
    """``command`` in the repository root, with this venv as ``VENV`` unless ``env`` says."""
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, 'VENV': str(VENV), **env}, timeout=300)


# --- refusals -----------------------------------------------------------------------------------
def test_script_refuses_when_gpus_are_hidden(tmp_path):
    out = tmp_path / 'out'
    proc = run(['bash', SCRIPT, out], CUDA_VISIBLE_DEVICES='')
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'no CUDA GPU' in proc.stderr and 'needs one NVIDIA GPU' in proc.stderr
    assert not out.exists() and '[install]' not in proc.stdout  # nothing installed or written


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU is visible: the script would run')
def test_script_refuses_when_the_venv_sees_no_gpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'CUDA_VISIBLE_DEVICES'}
    proc = subprocess.run(['bash', str(SCRIPT), str(tmp_path / 'out')], capture_output=True,
                          text=True, cwd=REPO, env=dict(env, VENV=str(VENV)), timeout=300)
    assert proc.returncode == 2
    assert f'torch in {VENV} sees none' in proc.stderr and '--device cpu --quick' in proc.stderr


@pytest.mark.skipif(shutil.which('nvidia-smi') is not None, reason='nvidia-smi is installed')
def test_script_without_a_venv_refuses_before_installing(tmp_path):
    venv = tmp_path / 'no_venv'
    proc = run(['bash', SCRIPT, tmp_path / 'out'], VENV=str(venv))
    assert proc.returncode == 2 and 'nvidia-smi lists none' in proc.stderr
    assert not venv.exists()


def test_driver_refuses_without_cuda(tmp_path):
    out = tmp_path / 'out'
    proc = run_tool('gpu_check', out, env=dict(CUDA_VISIBLE_DEVICES=''), check=False, timeout=300)
    assert proc.returncode == EXIT_REFUSED == 2
    assert 'no CUDA GPU is available' in proc.stderr and '--device cpu --quick' in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize('argv, message', [
    (['--device', 'cpu'], '--device cpu needs --quick'),
    (['--device', 'tpu', '--quick'], 'is not a torch device'),
    (['--device', 'cpu', '--quick', '--only', 'nothing'], 'invalid choice'),
    (['--device', 'cpu', '--quick', '--threads', '0'], '--threads must be at least 1'),
])
def test_bad_arguments_are_errors(argv, message, capsys):
    assert run_tool_main('gpu_check', argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_whole_quick_run_writes_the_report(tmp_path):
    out = tmp_path / 'out'
    run_tool('gpu_check', out, '--device', 'cpu', '--quick', timeout=1800)
    report = json.loads((out / 'gpu_check.json').read_text())
    assert report['passed'] and list(report['steps']) == list(STEPS)
    table = (out / 'gpu_check.md').read_text()
    for heading in ('Backbones: forward + backward vs fp32', 'batch 1: forward + backward',
                    'Multi-scale: forward + backward', 'Training steps', 'tools/benchmark.py'):
        assert heading in table
