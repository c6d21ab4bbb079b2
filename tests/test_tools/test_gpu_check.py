"""scripts/gpu_check.sh and tools/gpu_check.py without a GPU: clear refusals, and the driver's
steps run on CPU at tiny sizes (``--device cpu --quick``), so the GPU check is tested code.

The model steps (UperNet, Mask R-CNN from the repository's configs), the benchmark and a whole
``--quick`` run take minutes on 2 cores: they are ``slow``.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'gpu_check.py'
SCRIPT = ROOT / 'scripts' / 'gpu_check.sh'
VENV = Path(sys.executable).parents[1]

_spec = importlib.util.spec_from_file_location('gpu_check', TOOL)
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)

#: Small widths: the steps' code paths at a fraction of the cost of the real archs.
SMALL_BACKBONES = (
    ('Swin', dict(embed_dims=16, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 4))),
    ('CSWin', dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 4))),
    ('CvT', dict(embed_dims=(16, 32, 48, 48), num_heads=(1, 2, 3, 3), depths=(1, 1, 1, 1))),
    ('MPViT', dict(embed_dims=(16, 32, 48, 48), num_layers=(1, 1, 1, 1), num_heads=(8, 8, 8, 8),
                   mlp_ratios=(2, 2, 2, 2), num_paths=(2, 2, 2, 2))),
)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread for these small, overhead-bound steps: on a shared 2-core machine two
    threads mostly wait for each other (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_settings(**overrides):
    settings = gpu_check.make_settings(torch.device('cpu'), quick=True)
    settings.backbones = SMALL_BACKBONES
    settings.backbone_size = (32, 48)
    settings.memory_size = (32, 40)
    for key, value in overrides.items():
        setattr(settings, key, value)
    return settings


def run(command, **env):
    """``command`` in the repository root, with this venv as ``VENV`` unless ``env`` says."""
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=ROOT,
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
                          text=True, cwd=ROOT, env=dict(env, VENV=str(VENV)), timeout=300)
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
    proc = run([sys.executable, TOOL, out], CUDA_VISIBLE_DEVICES='')
    assert proc.returncode == gpu_check.EXIT_REFUSED == 2
    assert 'no CUDA GPU is available' in proc.stderr and '--device cpu --quick' in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize('argv, message', [
    (['--device', 'cpu'], '--device cpu needs --quick'),
    (['--device', 'tpu', '--quick'], 'is not a torch device'),
    (['--device', 'cpu', '--quick', '--only', 'nothing'], 'invalid choice'),
    (['--device', 'cpu', '--quick', '--threads', '0'], '--threads must be at least 1'),
])
def test_bad_arguments_are_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.parse_args(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


# --- steps on CPU -------------------------------------------------------------------------------
def test_environment_and_mmcv_ops_steps():
    settings = small_settings()
    env = gpu_check.run_step('environment', settings)
    assert env['status'] == 'passed', env
    assert env['result']['torch'] == torch.__version__ and env['result']['mmcv'] == '2.1.0'
    ops = gpu_check.run_step('mmcv_ops', settings)
    assert ops['status'] == 'passed', ops
    assert ops['result']['nms_kept'] > 0
    assert ops['result']['roi_align_sr2_max_abs_diff'] == dict(output=0.0, grad=0.0)  # CPU vs CPU


def test_mmcv_ops_step_fails_when_the_devices_disagree(monkeypatch):
    """The device's nms is stood in for by one that drops the last box it keeps."""
    import mmcv.ops
    real_nms, calls = mmcv.ops.nms, []

    def nms_dropping_a_box(boxes, scores, iou_threshold):
        dets, keep = real_nms(boxes, scores, iou_threshold)
        calls.append(len(keep))
        return (dets, keep) if len(calls) == 1 else (dets[:-1], keep[:-1])

    monkeypatch.setattr(mmcv.ops, 'nms', nms_dropping_a_box)
    record = gpu_check.run_step('mmcv_ops', small_settings())
    assert record['status'] == 'failed'
    assert f'nms on cpu keeps {calls[0] - 1} boxes, on the CPU {calls[0]}' in record['error']


def test_backbone_steps_check_every_backbone_and_precision():
    settings = small_settings()
    backbones = gpu_check.run_step('backbones', settings)
    assert backbones['status'] == 'passed', backbones.get('error')
    rows = backbones['result']
    assert list(rows) == [f'{n}/{p}' for n, _ in SMALL_BACKBONES for p in gpu_check.PRECISIONS]
    for key, row in rows.items():
        assert row['finite'] and row['seconds'] > 0
        if not key.endswith('fp32'):
            assert 0 < max(row['output_errors']) < row['tolerance']
            assert row['grad_error'] > 0
    assert rows['Swin/fp16-amp']['loss_scale'] > 0

    switch = gpu_check.run_step('attn_switch', settings)
    assert switch['status'] == 'passed', switch.get('error')
    assert set(switch['result']) == {n for n, _ in SMALL_BACKBONES}
    swin = switch['result']['Swin']  # Swin has the switch; the others may not yet
    assert swin['output_error'] < gpu_check.ATTN_SWITCH_TOLERANCE
    assert swin['grad_error'] < gpu_check.ATTN_SWITCH_TOLERANCE

    memory = gpu_check.run_step('memory', small_settings(backbones=SMALL_BACKBONES[:1]))
    assert memory['status'] == 'passed', memory.get('error')
    for key, row in memory['result'].items():  # on CPU: no peak memory or syncs
        assert row['ms'] > 0 and 'peak_mb' not in row and 'syncs' not in row
        if not key.endswith('fp16-amp'):  # the operators that ran (not profiled in CPU fp16)
            assert any('softmax' in op or 'attention' in op for op in row['attention_kernels'])


def test_multiscale_step_measures_every_backbone():
    record = gpu_check.run_step('multiscale', small_settings(multiscale_scale=1 / 16))
    result = record['result']
    assert len(result['sizes']) == 3 and result['rounds'] == 1
    for name, _ in SMALL_BACKBONES:
        row = result[name]
        assert row['ms_after_size_change'] > 0 and row['ms_same_size'] > 0
        assert row['held_tensor_mb_growth'] == 0  # no backbone keeps anything per size
        assert row['clock'] == 'process CPU time'
    assert record['status'] == 'passed'  # --quick: reported, not judged


def test_multiscale_step_fails_above_the_threshold(monkeypatch):
    monkeypatch.setattr(gpu_check, 'MULTISCALE_MAX_RATIO', 0.)  # any cost is too much
    record = gpu_check.run_step('multiscale', small_settings(
        quick=False, backbones=SMALL_BACKBONES[:1], multiscale_scale=1 / 16))
    assert record['status'] == 'failed' and 'Swin: a size change costs' in record['error']
    assert record['result']['Swin']['ratio'] > 0


def test_a_failing_check_is_reported_and_the_run_fails(tmp_path, monkeypatch):
    """A failed check is recorded (not raised), the other steps still run, the report says
    FAILED with the reason, and the exit status is 1."""
    def failing_step(settings):
        gpu_check.require(False, 'roi_align differs by 0.5')

    monkeypatch.setitem(gpu_check.STEPS, 'mmcv_ops', failing_step)
    # this process's settings stay: its thread count and mmengine's current logger
    monkeypatch.setattr(torch, 'set_num_threads', lambda n: None)
    monkeypatch.setattr(gpu_check, 'quiet_mm_logs', lambda: None)
    out = tmp_path / 'out'
    status = gpu_check.main([str(out), '--device', 'cpu', '--quick', '--only', 'environment',
                             'mmcv_ops'])
    assert status == gpu_check.EXIT_FAILED == 1
    report = json.loads((out / 'gpu_check.json').read_text())
    assert report['passed'] is False
    assert report['steps']['environment']['status'] == 'passed'
    assert report['steps']['mmcv_ops'] == dict(status='failed', error='roi_align differs by 0.5',
                                               seconds=report['steps']['mmcv_ops']['seconds'])
    table = (out / 'gpu_check.md').read_text()
    assert '**FAILED**' in table and '| mmcv_ops | failed |' in table
    assert 'roi_align differs by 0.5' in table


def test_low_precision_beyond_tolerance_fails_the_backbone_step(monkeypatch):
    monkeypatch.setattr(gpu_check, 'OUTPUT_TOLERANCE',
                        {'default': {'bf16': 1e-9, 'fp16-amp': 1e-9}})
    record = gpu_check.run_step('backbones', small_settings(backbones=SMALL_BACKBONES[:1]))
    assert record['status'] == 'failed'
    assert 'Swin bf16: output error' in record['error'] and 'Swin fp16-amp' in record['error']
    rows = record['result']  # what was measured stays in the report
    assert rows['Swin/fp32']['finite'] and 'error' not in rows['Swin/fp32']
    assert rows['Swin/bf16']['output_errors']
    assert rows['Swin/bf16']['error'].startswith('output error')


def test_sync_counting_keeps_cuda_sync_warnings_and_restores_the_mode(monkeypatch):
    """The CUDA-only path of count_syncs, with the debug-mode switch stubbed (no GPU here)."""
    modes = []
    monkeypatch.setattr(torch.cuda, 'set_sync_debug_mode', modes.append)
    with gpu_check.count_syncs(torch.device('cuda')) as syncs:
        warnings.warn('called a synchronizing CUDA operation (cudaStreamSynchronize)')
        warnings.warn('something else')
    assert syncs == ['called a synchronizing CUDA operation (cudaStreamSynchronize)']
    assert modes == ['warn', 'default']
    with pytest.warns(UserWarning, match='synchronizing'):  # off CUDA: not caught, not counted
        with gpu_check.count_syncs(torch.device('cpu')) as syncs:
            warnings.warn('called a synchronizing CUDA operation')
    assert syncs == [] and modes == ['warn', 'default']


def test_report_tables_show_gpu_figures(tmp_path):
    """The tables of what only a GPU run measures (peak memory, syncs, kernels, AMP steps)."""
    report = dict(passed=True, seconds=200.0, settings=dict(memory_size=(800, 1333)), steps=dict(
        memory=dict(status='passed', seconds=30.0, result={
            'Swin/bf16': dict(ms=81.5, peak_mb=2345.4, syncs=0,
                              attention_kernels=['fmha_cutlassF_bf16_aligned_64x64_rf_sm80'])}),
        upernet=dict(status='passed', seconds=9.0, result={
            'size': [512, 512], 'batch': 2, 'AmpOptimWrapper (fp16)': dict(loss=7.25,
                                                                           loss_scale=65536.0)}),
        benchmark=dict(status='passed', seconds=150.0, result=dict(command='x', rows=[
            dict(model='swin:tiny', size='512x512', mode='train', seconds=0.05, peak_mb=900.0,
                 time_ratio=None, relative_to=None, error=None),
            dict(model='timm-swin:tiny', size='800x1333', mode='train', seconds=None,
                 peak_mb=None, time_ratio=None, relative_to=None, error='img size mismatch')]))))
    _, md_path = gpu_check.write_report(report, tmp_path)
    table = md_path.read_text()
    assert '| Swin | bf16 | 81.5 | 2345 | 0 | `fmha_cutlassF_bf16_aligned_64x64_rf_sm80` |' in table
    assert '| UperNet Swin-T 512x512 | AmpOptimWrapper (fp16) | loss 7.25, loss_scale 6.554e+04 |' \
        in table
    assert '| swin:tiny | 512x512 | train | 50.0 | 900 | – |' in table
    assert '| timm-swin:tiny | 800x1333 | train | img size mismatch |' in table


def test_benchmark_command_runs_the_requested_comparison():
    settings = gpu_check.make_settings(torch.device('cuda'), quick=False)
    command = gpu_check.benchmark_command(settings, 'b.json')
    text = ' '.join(command)
    assert command[1].endswith('tools/benchmark.py')
    assert '--device cuda --dtype bf16' in text and '--json b.json' in text
    assert ('--models swin:tiny mmseg-swin:tiny timm-swin:tiny cswin:tiny cvt:13 mpvit:small '
            '--sizes 512x512 800x1333') in text


# --- slow: the model steps, the benchmark, a whole quick run ------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize('step', ['upernet', 'mask_rcnn', 'benchmark'])
def test_model_and_benchmark_steps_on_cpu(step):
    record = gpu_check.run_step(step, gpu_check.make_settings(torch.device('cpu'), quick=True))
    assert record['status'] == 'passed', record.get('error')
    result = record['result']
    if step == 'benchmark':
        assert [r['model'] for r in result['rows']] == ['swin:tiny', 'mmseg-swin:tiny']
        assert all(r['seconds'] > 0 and not r['error'] for r in result['rows'])
        assert result['rows'][1]['relative_to'] == 'swin:tiny'
    else:
        losses = result['OptimWrapper']
        assert losses['loss'] > 0
        assert result['AmpOptimWrapper (fp16)'].startswith('skipped')


@pytest.mark.slow
def test_whole_quick_run_writes_the_report(tmp_path):
    out = tmp_path / 'out'
    proc = run([sys.executable, TOOL, out, '--device', 'cpu', '--quick'])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / 'gpu_check.json').read_text())
    assert report['passed'] and list(report['steps']) == list(gpu_check.STEPS)
    table = (out / 'gpu_check.md').read_text()
    for heading in ('Backbones: forward + backward vs fp32', 'batch 1: forward + backward',
                    'Multi-scale: forward + backward', 'Training steps', 'tools/benchmark.py'):
        assert heading in table
