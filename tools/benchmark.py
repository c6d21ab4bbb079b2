#!/usr/bin/env python
"""Speed, memory, parameters and FLOPs of the backbones, side by side in one run.

    python tools/benchmark.py                                   # defaults below
    python tools/benchmark.py --models swin:tiny cswin:tiny --sizes 512x512 800x1333 --runs 5
    python tools/benchmark.py --models swin:tiny mmseg-swin:tiny timm-swin:tiny --json out.json
    python tools/benchmark.py --models cswin:tiny --with-cp off act on --modes train
    python tools/benchmark.py --models swin:tiny cvt:13 --compile            # eager vs inductor
    python tools/benchmark.py --peer official-cswin:tiny=my_wrappers:build_official_cswin ...
    python tools/benchmark.py --models swin:tiny timm-swin:tiny --sizes 512x512 --rounds 5
    python tools/benchmark.py --models swin:tiny timm-swin:tiny --interleave --runs 9  # one process
    python tools/benchmark.py ... --interleave --threads 1 --clock process   # on a loaded machine
    python tools/benchmark.py --profile --models swin:tiny cvt:13 --sizes 512x512   # where time goes

Each measurement runs in a fresh subprocess (peak memory is that case's alone); times are
medians over ``--runs`` after ``--warmup``; ``--rounds R`` interleaves R measurements of every
case and reports medians and ratios to the first model. Models: ``swin``, ``cswin``, ``cvt``,
``mpvit`` (this package), ``mmseg-swin``, ``timm-swin``, and any builder given with ``--peer
NAME:ARCH=module:function`` (called as ``function(arch, in_size)``). What is measured and how:
:mod:`mmvit_plugin.benchmark.speed`. ``--profile`` instead prints, per case, the share of the step
in matmul/conv, attention, normalisation, memory moves and the rest, and the fraction of the
measured GEMM peak reached: :mod:`mmvit_plugin.benchmark.profile`.
"""
import argparse
import json
import sys
from typing import List, Optional

from mmvit_plugin.apis.cli import parse_size
from mmvit_plugin.benchmark.profile import profile_backbones
from mmvit_plugin.benchmark.speed import CP_SETTINGS, DEFAULT_MODELS, benchmark, run_worker


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=DEFAULT_MODELS, help='family:arch ...')
    parser.add_argument('--sizes', nargs='+', type=parse_size, default=[(512, 512), (800, 1333)])
    parser.add_argument('--modes', nargs='+', choices=['forward', 'train'],
                        default=['forward', 'train'], help='train = forward + backward')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--rounds', type=int, default=1,
                        help='repeat every case this many times, models interleaved (a fresh '
                        'process each time); report medians over the rounds')
    parser.add_argument('--interleave', action='store_true',
                        help='run the models of each setting in one process, a step of each in '
                        'turn: ratios paired per iteration (robust on a loaded machine); no peak '
                        'memory')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--clock', choices=['wall', 'process'], default='wall',
                        help="process: this process's CPU time (with --threads 1 the work done, "
                        'nearly blind to other jobs on a shared machine)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', choices=['fp32', 'bf16'], default='fp32', help='bf16: autocast')
    parser.add_argument('--with-cp', nargs='+', choices=sorted(CP_SETTINGS), default=['off'],
                        help="gradient checkpointing of the train-mode cases: off, act (MLP "
                        "activations), on (whole blocks); both = off on, all = off act on")
    parser.add_argument('--compile', nargs='?', const='inductor', default=None, metavar='BACKEND',
                        help='also run every case through torch.compile (default backend '
                        'inductor) and report eager vs compiled')
    parser.add_argument('--compile-mode', default=None,
                        help="torch.compile mode, e.g. 'max-autotune' (with --compile)")
    parser.add_argument('--compile-dynamic', action='store_true',
                        help='torch.compile(dynamic=True) (with --compile)')
    parser.add_argument('--peer', action='append', default=[], metavar='NAME:ARCH=MODULE:FUNC')
    parser.add_argument('--no-flops', action='store_true', help='skip params/FLOPs counting')
    parser.add_argument('--json', default=None, help='also write the results here')
    parser.add_argument('--profile', action='store_true',
                        help='instead of timing side by side: where each case spends its time '
                        '(operator categories, fraction of the GEMM peak); eager, fp32, CPU')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.worker:  # one case, as the library's subprocesses run it
        print(json.dumps(run_worker(json.loads(args.worker))))
        return 0
    if args.profile:
        profile_backbones(args.models, args.sizes, args.modes, args.batch, args.runs,
                          args.warmup, args.threads, args.peer, args.no_flops, json_out=args.json,
                          clock=args.clock)
        return 0
    benchmark(args.models, args.sizes, args.modes, args.batch, args.runs, args.rounds,
              args.warmup, args.threads, args.device, args.dtype, args.with_cp, args.compile,
              args.compile_mode, args.compile_dynamic, args.peer, args.no_flops, args.json,
              args.interleave, args.clock)
    return 0


if __name__ == '__main__':
    sys.exit(main())
