#!/usr/bin/env python
"""Benchmark the model zoo on ADE20K / COCO: one command from a folder of checkpoints to the papers'
table, measured beside the published figures.

For every config of ``configs/metafile.yaml`` (or those ``--configs`` picks) whose checkpoint is in
``--checkpoints DIR``, runs tools/test.py with ``--data-root`` and writes one table, Markdown and
JSON (:mod:`mmvit_plugin.benchmark.zoo_benchmark`). Which file is whose checkpoint: the metafile is
the one name map (:mod:`mmvit_plugin.benchmark.zoo`; ``--list`` prints it). The metafile is also
where docs/configs.md's tables come from (``--write-docs``, :mod:`mmvit_plugin.benchmark.zoo_docs`).

Examples::

    python tools/benchmark_zoo.py --data-root data/ade/ADEChallengeData2016 --checkpoints ckpts/ \\
        --configs 'upernet_*'
    python tools/benchmark_zoo.py --data-root data/coco --checkpoints ckpts/ --configs '*coco_3x'
    python tools/benchmark_zoo.py --data-root D --checkpoints ckpts/ --tta          # ms+flip mIoU
    python tools/benchmark_zoo.py --data-root D --checkpoints ckpts/ --launcher pytorch --gpus 8
    python tools/benchmark_zoo.py --data-root D --checkpoints ckpts/ --launcher slurm \\
        --partition gpu --gpus 8
    python tools/benchmark_zoo.py --list                     # the checkpoint name map
    python tools/benchmark_zoo.py --write-docs               # regenerate docs/configs.md's tables
    python tools/benchmark_zoo.py --measure-complexity --configs 'upernet_swin_*'  # + --write-docs
"""
import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

from mmvit_plugin.benchmark.zoo import DEFAULT_METAFILE, list_checkpoints
from mmvit_plugin.benchmark.zoo_benchmark import DEFAULT_OUT_DIR, Launcher, benchmark_zoo
from mmvit_plugin.benchmark.zoo_docs import update_complexity, update_docs


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='The name map, published figures and sources: configs/metafile.yaml.')
    parser.add_argument('--data-root', type=Path, metavar='DIR',
                        help='the dataset folder (data/ade/ADEChallengeData2016, data/coco, ...): '
                        'tools/test.py --data-root for every config')
    parser.add_argument('--checkpoints', type=Path, metavar='DIR',
                        help='folder of whole-model checkpoints: the official release file names '
                        'or <config stem>.pth (--list shows the map)')
    parser.add_argument('--configs', nargs='+', metavar='PATTERN',
                        help='glob(s) on config names, e.g. \'upernet_*\' \'*coco_3x\' (default: '
                        'every config of the metafile)')
    parser.add_argument('--tta', action='store_true',
                        help='test with the configs\' TTA (UperNet: multi-scale + flip, compared '
                        'with the published ms+flip mIoU)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='none: one process; pytorch: torchrun via tools/dist_test.sh; '
                        'slurm: srun with mmengine\'s slurm launcher')
    parser.add_argument('--gpus', type=int, default=8,
                        help='processes for --launcher pytorch / slurm (default 8)')
    parser.add_argument('--gpus-per-node', type=int, default=8, help='slurm (default 8)')
    parser.add_argument('--cpus-per-task', type=int, default=5, help='slurm (default 5)')
    parser.add_argument('--partition', help='slurm partition (needed with --launcher slurm)')
    parser.add_argument('--srun-args', default=os.environ.get('SRUN_ARGS', ''),
                        help='extra srun options (default: $SRUN_ARGS)')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                        help='passed to every tools/test.py run')
    parser.add_argument('--out-dir', type=Path, default=DEFAULT_OUT_DIR,
                        help=f'where results.md, results.json and the runs go (default '
                        f'{DEFAULT_OUT_DIR})')
    parser.add_argument('--metafile', type=Path, default=DEFAULT_METAFILE,
                        help='the model zoo: configs, published figures, released checkpoint '
                        'names (default configs/metafile.yaml)')
    parser.add_argument('--list', action='store_true',
                        help='print the checkpoint file names each config is matched by, and stop')
    parser.add_argument('--write-docs', action='store_true',
                        help='regenerate the tables of docs/configs.md from the metafile, and stop')
    parser.add_argument('--measure-complexity', action='store_true',
                        help='measure the parameters and FLOPs of the configs (--configs) with '
                        'tools/get_flops.py and write them into the metafile, and stop (then '
                        '--write-docs); minutes per config on a CPU')
    args = parser.parse_args(argv)
    if args.list or args.write_docs or args.measure_complexity:
        return args
    missing = [opt for opt, value in (('--data-root', args.data_root),
                                      ('--checkpoints', args.checkpoints)) if value is None]
    if missing:
        parser.error(f'{" and ".join(missing)} needed to benchmark (or --list / --write-docs)')
    if not args.data_root.is_dir():
        parser.error(f'--data-root {args.data_root}: no such directory')
    if not args.checkpoints.is_dir():
        parser.error(f'--checkpoints {args.checkpoints}: no such directory')
    if args.launcher == 'slurm' and not args.partition:
        parser.error('--launcher slurm needs --partition')
    if args.gpus < 1:
        parser.error('--gpus must be at least 1')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.list:
        return list_checkpoints(args.metafile)
    if args.write_docs:
        return update_docs(args.metafile)
    if args.measure_complexity:
        return update_complexity(args.metafile, args.configs)
    launcher = Launcher(args.launcher, args.gpus, args.gpus_per_node, args.cpus_per_task,
                        args.partition, args.srun_args)
    return benchmark_zoo(args.metafile, args.data_root, args.checkpoints, args.configs, args.tta,
                         args.cfg_options, launcher, args.out_dir)


if __name__ == '__main__':
    sys.exit(main())
