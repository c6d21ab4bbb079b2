"""Running the GPU check: the steps in order, each timed and recorded (a failing step does not stop
the others), then the report."""
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from . import checks
from .checks import STEPS, CheckFailed, Settings, make_settings
from .report import write_report

DEFAULT_OUT_DIR = 'work_dirs/gpu_check'
EXIT_FAILED, EXIT_REFUSED = 1, 2


def run_step(name: str, settings: Settings) -> Dict[str, Any]:
    """One step: ``status`` ``'passed'``, ``'failed'`` (a check found a problem; the results
    gathered so far are kept) or ``'error'`` (the step itself crashed), and its seconds."""
    start = time.perf_counter()
    record: Dict[str, Any] = {}
    try:
        record['result'] = STEPS[name](settings)
        record['status'] = 'passed'
    except CheckFailed as err:
        record.update(status='failed', error=str(err))
        if err.result is not None:
            record['result'] = err.result
    except Exception as err:  # noqa: BLE001  (report it and go on with the other steps)
        record.update(status='error', error=f'{type(err).__name__}: {err}',
                      traceback=traceback.format_exc(limit=8))
    record['seconds'] = time.perf_counter() - start
    return record


def quiet_mm_logs() -> None:
    """Only warnings from mmengine's logger (building models and optimizers logs every
    parameter's options at INFO): the newest MMLogger instance is the one they write to."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance('gpu_check', log_level='WARNING')


def no_cuda_message() -> str:
    build = f'built with CUDA {torch.version.cuda}' if torch.version.cuda else 'a CPU-only build'
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    hint = f', CUDA_VISIBLE_DEVICES={visible!r}' if visible is not None else ''
    return (f'gpu_check: no CUDA GPU is available here (torch {torch.__version__}, {build}; '
            f'torch.cuda.is_available() is False{hint}). This check needs one NVIDIA GPU. '
            'To try the script itself on CPU: '
            'python tools/gpu_check.py OUT_DIR --device cpu --quick')


def run_gpu_check(out_dir: str = DEFAULT_OUT_DIR, device: torch.device = torch.device('cuda'),
                  quick: bool = False, only: Optional[Sequence[str]] = None,
                  skip: Sequence[str] = (), threads: Optional[int] = None,
                  benchmark_modes: Sequence[str] = ('train', ),
                  benchmark_timeout: int = 240) -> int:
    """Run the steps (``only`` those, less ``skip``) on ``device`` and write ``gpu_check.json`` and
    ``gpu_check.md`` into ``out_dir``: 0 when every step passed, :data:`EXIT_FAILED` when one
    failed, :data:`EXIT_REFUSED` (nothing run) when ``device`` is CUDA and there is none. TF32
    is off throughout (fp32 means fp32); ``threads``: torch's CPU threads (default: 1 on CPU)."""
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print(no_cuda_message(), file=sys.stderr)
        return EXIT_REFUSED
    if device.type == 'cuda':
        if device.index is None:  # 'cuda': the current device, with its index
            device = torch.device('cuda', torch.cuda.current_device())
        torch.cuda.set_device(device)
    threads = threads or (1 if device.type == 'cpu' else None)
    if threads:
        torch.set_num_threads(threads)
    quiet_mm_logs()
    # fp32 references are fp32: no TF32 in matmuls or convolutions
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    settings = make_settings(device, quick, benchmark_timeout, benchmark_modes)
    names = [n for n in (only or STEPS) if n not in skip]
    start = time.perf_counter()
    steps: Dict[str, Any] = {}
    for name in names:
        print(f'[gpu_check] {name} ...', flush=True)
        steps[name] = run_step(name, settings)
        record = steps[name]
        print(f"[gpu_check] {name}: {record['status']} ({record['seconds']:.1f} s)"
              + (f": {record['error']}" if 'error' in record else ''), flush=True)
    report = dict(passed=all(r['status'] == 'passed' for r in steps.values()),
                  seconds=time.perf_counter() - start,
                  settings=dict(device=str(settings.device), quick=settings.quick,
                                backbones=settings.backbones,
                                backbone_size=settings.backbone_size,
                                memory_size=settings.memory_size,
                                upernet_size=settings.upernet_size,
                                mask_rcnn_size=settings.mask_rcnn_size,
                                ms_deform_attn_size=settings.ms_deform_attn_size),
                  tolerances=dict(output=checks.OUTPUT_TOLERANCE,
                                  attn_switch=checks.ATTN_SWITCH_TOLERANCE,
                                  ms_deform_attn=checks.MS_DEFORM_ATTN_TOLERANCE),
                  steps=steps)
    json_path, md_path = write_report(report, Path(out_dir))
    print(f"[gpu_check] {'PASSED' if report['passed'] else 'FAILED'} in {report['seconds']:.0f} s; "
          f'wrote {json_path} and {md_path}', flush=True)
    return 0 if report['passed'] else EXIT_FAILED
