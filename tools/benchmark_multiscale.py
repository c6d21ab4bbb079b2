#!/usr/bin/env python
"""What a changing input size costs a backbone in multi-scale training.

    python tools/benchmark_multiscale.py                              # Swin-T, 8 sizes, 3 rounds
    python tools/benchmark_multiscale.py --rounds 6 --json ms.json    # docs/benchmarks.md's figure
    python tools/benchmark_multiscale.py --model cswin:tiny --num-sizes 12 --json ms.json
    python tools/benchmark_multiscale.py --quick                      # smoke test, seconds

The sizes are those of mmdet's 3x multi-scale pipeline (``configs/_base_/detr_aug.py``); every
size runs once (warm-up), then per round every size twice in a row, forward + backward: right
after a size change, then the same size again. Reported: both kinds' mean time, their ratio, the
paired ratios, and the tensors the model holds (:mod:`mmvit_plugin.benchmark.multiscale`).
"""
import argparse
import sys
from typing import List, Optional

import torch

from mmvit_plugin.apis.cli import parse_size
from mmvit_plugin.benchmark.multiscale import (DEFAULT_IMAGE_SHAPES, QUICK_SCALE,
                                               benchmark_multiscale)
from mmvit_plugin.models.families import FAMILIES, parse_spec


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='swin:tiny', help='family:arch of this package '
                        f'({", ".join(sorted(FAMILIES))}); default swin:tiny')
    parser.add_argument('--num-sizes', type=int, default=8,
                        help='distinct pipeline sizes to cycle through (0: all of them)')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--image-shapes', nargs='+', type=parse_size,
                        default=list(DEFAULT_IMAGE_SHAPES), metavar='HxW',
                        help='original image shapes fed to the resize (default: COCO-like 4:3, '
                        '3:2, their portraits, and 16:9)')
    parser.add_argument('--scale', type=float, default=1.0,
                        help='scale the pipeline (short sides and long-side cap) by this factor')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (default 1: then the process CPU time counts this '
                        "process's work only, even on a machine shared with other jobs)")
    parser.add_argument('--device', default='cpu', help='cpu (default), cuda or cuda:N')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--quick', action='store_true',
                        help=f'smoke test: pipeline scaled by {QUICK_SCALE}, 3 sizes, 1 round')
    parser.add_argument('--json', default=None, help='also write the results here')
    args = parser.parse_args(argv)
    if args.quick:
        args.scale, args.num_sizes, args.rounds = QUICK_SCALE, 3, 1
    if args.num_sizes < 0 or args.rounds < 1 or args.batch < 1 or args.threads < 1:
        parser.error('--num-sizes must be >= 0 and --rounds, --batch, --threads >= 1')
    if not 0 < args.scale <= 1:
        parser.error(f'--scale must be in (0, 1], got {args.scale}')
    try:
        parse_spec(args.model)
    except ValueError as err:
        parser.error(str(err))
    try:
        args.device = torch.device(args.device)
    except RuntimeError:
        parser.error(f'--device: {args.device!r} is not a torch device (cpu, cuda or cuda:N)')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    benchmark_multiscale(args.model, args.num_sizes, args.rounds, args.image_shapes, args.scale,
                         args.batch, args.threads, args.device, args.seed, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
