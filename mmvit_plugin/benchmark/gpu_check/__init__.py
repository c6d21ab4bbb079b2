"""The GPU check (tools/gpu_check.py, scripts/gpu_check.sh): does this package train correctly,
and how fast, on one CUDA GPU? The steps and their settings (:mod:`.checks`), running them
(:mod:`.run`) and the report (:mod:`.report`)."""
from .checks import STEPS, CheckFailed, Settings, make_settings, require
from .report import markdown_report, write_report
from .run import (DEFAULT_OUT_DIR, EXIT_FAILED, EXIT_REFUSED, no_cuda_message, run_gpu_check,
                  run_step)

__all__ = ['STEPS', 'CheckFailed', 'Settings', 'make_settings', 'require', 'markdown_report',
           'write_report', 'DEFAULT_OUT_DIR', 'EXIT_FAILED', 'EXIT_REFUSED', 'no_cuda_message',
           'run_gpu_check', 'run_step']
