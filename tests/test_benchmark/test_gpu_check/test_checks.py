"""mmvit_plugin.benchmark.gpu_check's steps on CPU at tiny sizes (``--device cpu --quick``), so the
GPU check is tested code. The model steps (UperNet, Mask R-CNN from the repository's configs)
and the benchmark take minutes on 2 cores: they are ``slow``. The command line and
scripts/gpu_check.sh: tests/test_tools/test_gpu_check.py."""
import warnings

import pytest
import torch

from mmvit_plugin.benchmark.gpu_check import checks, make_settings, run_step


def names(settings):
    return [name for name, _ in settings.backbones]


def test_environment_and_mmcv_ops_steps(small_settings):
    settings = small_settings()
    env = run_step('environment', settings)
    assert env['status'] == 'passed', env
    assert env['result']['torch'] == torch.__version__ and env['result']['mmcv'] == '2.1.0'
    ops = run_step('mmcv_ops', settings)
    assert ops['status'] == 'passed', ops
    assert ops['result']['nms_kept'] > 0
    assert ops['result']['roi_align_sr2_max_abs_diff'] == dict(output=0.0, grad=0.0)  # CPU vs CPU


def test_mmcv_ops_step_fails_when_the_devices_disagree(monkeypatch, small_settings):
    """The device's nms is stood in for by one that drops the last box it keeps."""
    import mmcv.ops
    real_nms, calls = mmcv.ops.nms, []

    def nms_dropping_a_box(boxes, scores, iou_threshold):
        dets, keep = real_nms(boxes, scores, iou_threshold)
        calls.append(len(keep))
        return (dets, keep) if len(calls) == 1 else (dets[:-1], keep[:-1])

    monkeypatch.setattr(mmcv.ops, 'nms', nms_dropping_a_box)
    record = run_step('mmcv_ops', small_settings())
    assert record['status'] == 'failed'
    assert f'nms on cpu keeps {calls[0] - 1} boxes, on the CPU {calls[0]}' in record['error']


def test_backbone_steps_check_every_backbone_and_precision(small_settings):
    settings = small_settings()
    backbones = run_step('backbones', settings)
    assert backbones['status'] == 'passed', backbones.get('error')
    rows = backbones['result']
    assert list(rows) == [f'{n}/{p}' for n in names(settings) for p in checks.PRECISIONS]
    for key, row in rows.items():
        assert row['finite'] and row['seconds'] > 0
        if not key.endswith('fp32'):
            assert 0 < max(row['output_errors']) < row['tolerance']
            assert row['grad_error'] > 0
    assert rows['Swin/fp16-amp']['loss_scale'] > 0

    switch = run_step('attn_switch', settings)
    assert switch['status'] == 'passed', switch.get('error')
    assert set(switch['result']) == set(names(settings))
    swin = switch['result']['Swin']  # Swin has the switch; the others may not yet
    assert swin['output_error'] < checks.ATTN_SWITCH_TOLERANCE
    assert swin['grad_error'] < checks.ATTN_SWITCH_TOLERANCE

    memory = run_step('memory', small_settings(backbones=1))
    assert memory['status'] == 'passed', memory.get('error')
    for key, row in memory['result'].items():  # on CPU: no peak memory or syncs
        assert row['ms'] > 0 and 'peak_mb' not in row and 'syncs' not in row
        if not key.endswith('fp16-amp'):  # the operators that ran (not profiled in CPU fp16)
            assert any('softmax' in op or 'attention' in op for op in row['attention_kernels'])


def test_ms_deform_attn_step_checks_the_pytorch_path_against_float64(small_settings):
    """Off CUDA only mmcv's PyTorch path runs; fp32 against the float64 reference at the quick
    size (Mask2Former's three levels for 64x96: 8x12, 4x6, 2x3)."""
    record = run_step('ms_deform_attn', small_settings())
    assert record['status'] == 'passed', record.get('error')
    result = record['result']
    assert result['levels'] == [[8, 12], [4, 6], [2, 3]] and result['queries'] == 96 + 24 + 6
    assert 'cuda_op' not in result
    errors = result['pytorch']
    assert set(errors) == {'output', 'grad_value', 'grad_locations', 'grad_weights'}
    assert all(0 < e < checks.MS_DEFORM_ATTN_TOLERANCE for e in errors.values()), errors


def test_ms_deform_attn_inputs_keep_locations_off_pixel_centres():
    """fp32 rounding must not move a sampling location across a pixel centre (the bilinear
    gradient jumps there): every location is at least 1 % of a pixel away from one."""
    inputs = checks.ms_deform_attn_inputs((64, 96), torch.Generator().manual_seed(0))
    extent = inputs['shapes'].flip(1).to(torch.float64).view(1, 1, 1, -1, 1, 2)
    pixels = inputs['locations'] * extent - 0.5
    fraction = pixels - pixels.floor()
    assert fraction.min() >= 0.0099 and fraction.max() <= 0.9901
    assert (pixels < 0).any() and (pixels > extent - 1).any()  # some sample beyond the border
    assert inputs['value'].dtype == torch.float64
    assert torch.equal(inputs['value'], inputs['value'].float().double())


def test_ms_deform_attn_step_fails_when_a_path_differs(monkeypatch, small_settings):
    """A device path that drops the last sampling point of every level stands in for a broken op."""
    real_paths = checks.ms_deform_attn_paths

    def paths(device):
        pytorch = real_paths(device)['pytorch']

        def dropping_a_point(value, shapes, level_start, locations, weights):
            return pytorch(value, shapes, level_start, locations,
                           torch.cat([weights[..., :-1], 0 * weights[..., -1:]], -1))
        return {'pytorch': pytorch, 'broken_op': dropping_a_point}

    monkeypatch.setattr(checks, 'ms_deform_attn_paths', paths)
    record = run_step('ms_deform_attn', small_settings())
    assert record['status'] == 'failed'
    assert 'broken_op on cpu: output' in record['error'] and 'pytorch on cpu' not in record['error']
    assert record['result']['broken_op']['grad_weights'] > checks.MS_DEFORM_ATTN_TOLERANCE
    assert record['result']['pytorch']['output'] < checks.MS_DEFORM_ATTN_TOLERANCE


def test_multiscale_step_measures_every_backbone(small_settings):
    settings = small_settings(multiscale_scale=1 / 16)
    record = run_step('multiscale', settings)
    result = record['result']
    assert len(result['sizes']) == 3 and result['rounds'] == 1
    for name in names(settings):
        row = result[name]
        assert row['ms_after_size_change'] > 0 and row['ms_same_size'] > 0
        assert row['held_tensor_mb_growth'] == 0  # no backbone keeps anything per size
        assert row['clock'] == 'process CPU time'
    assert record['status'] == 'passed'  # --quick: reported, not judged


def test_multiscale_step_fails_above_the_threshold(monkeypatch, small_settings):
    monkeypatch.setattr(checks, 'MULTISCALE_MAX_RATIO', 0.)  # any cost is too much
    record = run_step('multiscale', small_settings(
        quick=False, backbones=1, multiscale_scale=1 / 16))
    assert record['status'] == 'failed' and 'Swin: a size change costs' in record['error']
    assert record['result']['Swin']['ratio'] > 0


def test_low_precision_beyond_tolerance_fails_the_backbone_step(monkeypatch, small_settings):
    monkeypatch.setattr(checks, 'OUTPUT_TOLERANCE',
                        {'default': {'bf16': 1e-9, 'fp16-amp': 1e-9}})
    record = run_step('backbones', small_settings(backbones=1))
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
    with checks.count_syncs(torch.device('cuda')) as syncs:
        warnings.warn('called a synchronizing CUDA operation (cudaStreamSynchronize)')
        warnings.warn('something else')
    assert syncs == ['called a synchronizing CUDA operation (cudaStreamSynchronize)']
    assert modes == ['warn', 'default']
    with pytest.warns(UserWarning, match='synchronizing'):  # off CUDA: not caught, not counted
        with checks.count_syncs(torch.device('cpu')) as syncs:
            warnings.warn('called a synchronizing CUDA operation')
    assert syncs == [] and modes == ['warn', 'default']


def test_benchmark_command_runs_the_requested_comparison():
    settings = make_settings(torch.device('cuda'), quick=False)
    command = checks.benchmark_command(settings, 'b.json')
    text = ' '.join(command)
    assert command[1].endswith('tools/benchmark.py')
    assert '--device cuda --dtype bf16' in text and '--json b.json' in text
    assert ('--models swin:tiny mmseg-swin:tiny timm-swin:tiny cswin:tiny cvt:13 mpvit:small '
            '--sizes 512x512 800x1333') in text


# --- slow: the model steps, the benchmark, a whole quick run ------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize('step', ['upernet', 'mask_rcnn', 'benchmark'])
def test_model_and_benchmark_steps_on_cpu(step):
    record = run_step(step, make_settings(torch.device('cpu'), quick=True))
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


