#!/usr/bin/env python
"""The GPU check: does this package train correctly, and how fast, on one CUDA GPU?

    python tools/gpu_check.py [OUT_DIR]                       # on a GPU (scripts/gpu_check.sh)
    python tools/gpu_check.py /tmp/gc --device cpu --quick    # the same steps, tiny, on CPU
    python tools/gpu_check.py OUT --only mmcv_ops backbones   # some steps only

Steps (each is timed and recorded; a failing step does not stop the others): ``environment``,
``mmcv_ops`` (nms, roi_align on the device against the CPU), ``attn_switch`` (explicit vs sdpa
attention), ``backbones`` (fp32, bf16, fp16-AMP forward + backward), ``memory`` (peak, time,
host-device synchronisations, attention kernels at 800x1333), ``multiscale`` (a size change
costs nothing), ``upernet`` / ``mask_rcnn`` (one training step each, with and without AMP) and
``benchmark`` (tools/benchmark.py in bf16); what each checks:
:mod:`mmvit_plugin.benchmark.gpu_check.checks`.

Expected time on one H200 (estimated): about 4 minutes. Writes ``OUT_DIR/gpu_check.json`` and
``OUT_DIR/gpu_check.md``. Exit status 0 when every step passed, 1 when one failed, 2 when the
check cannot run here (no CUDA). TF32 is off throughout. ``--quick`` runs every step at tiny sizes
for debugging this script without a GPU (``--device cpu``).
"""
import argparse
import sys
from typing import List, Optional

import torch

from mmvit_plugin.benchmark.gpu_check import DEFAULT_OUT_DIR, STEPS, run_gpu_check


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out_dir', nargs='?', default=DEFAULT_OUT_DIR,
                        help='where gpu_check.json and gpu_check.md go '
                        f'(default {DEFAULT_OUT_DIR})')
    parser.add_argument('--device', default='cuda',
                        help='cuda (default), cuda:N, or cpu with --quick')
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes and a two-model benchmark: a dry run of the script')
    parser.add_argument('--only', nargs='+', choices=list(STEPS), metavar='STEP',
                        help=f'run these steps only ({", ".join(STEPS)})')
    parser.add_argument('--skip', nargs='+', choices=list(STEPS), default=[], metavar='STEP',
                        help='leave these steps out')
    parser.add_argument('--threads', type=int, default=None,
                        help="CPU threads of torch (default: torch's own; 1 with --device cpu, "
                        'where a shared machine makes more threads slower)')
    parser.add_argument('--benchmark-modes', nargs='+', choices=['forward', 'train'],
                        default=['train'], help='modes of tools/benchmark.py (default: train, '
                        'i.e. forward + backward; adding forward doubles its time)')
    parser.add_argument('--benchmark-timeout', type=int, default=240, metavar='S',
                        help='seconds tools/benchmark.py may take (default 240)')
    args = parser.parse_args(argv)
    try:
        args.device = torch.device(args.device)
    except RuntimeError:
        parser.error(f'--device: {args.device!r} is not a torch device (cuda, cuda:N or cpu)')
    if args.device.type not in ('cuda', 'cpu'):
        parser.error(f'--device must be cuda, cuda:N or cpu, got {args.device}')
    if args.device.type == 'cpu' and not args.quick:
        parser.error('--device cpu needs --quick: the full-size check would take hours on a CPU')
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be at least 1, got {args.threads}')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return run_gpu_check(args.out_dir, args.device, args.quick, args.only, args.skip, args.threads,
                         args.benchmark_modes, args.benchmark_timeout)


if __name__ == '__main__':
    sys.exit(main())
