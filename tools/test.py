#!/usr/bin/env python
"""Evaluate a checkpoint of a segmentor or a detector (mmseg or mmdet config alike).

Prints the metrics the config's test evaluator computes (mIoU/mAcc/aAcc for mmseg's IoUMetric,
box and mask AP for mmdet's CocoMetric) and can save pictures of the predictions next to the
ground truth (``--show-dir``).

Examples::

    python tools/test.py configs/upernet_cswin_t_ade20k.py work_dirs/x/iter_160000.pth
    python tools/test.py CONFIG CKPT --show-dir vis --out metrics.json
    tools/dist_test.sh CONFIG CKPT 8
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from train import _dict_action, build_runner, load_config, require_cuda_for_amp  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (evaluate) a segmentor or detector')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file (a whole-model mmengine checkpoint)')
    parser.add_argument('--work-dir', help='where the evaluation log goes '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--out', help='also write the metrics to this JSON file')
    parser.add_argument('--show-dir', help='save pictures of ground truth | prediction here')
    parser.add_argument('--show-interval', type=int, default=1,
                        help='with --show-dir/--show: draw every N-th test image (default: all)')
    parser.add_argument('--show', action='store_true', help='show the pictures in a window')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds per shown picture')
    parser.add_argument('--amp', action='store_true', help='mixed-precision test (needs a GPU)')
    parser.add_argument('--cfg-options', nargs='+', action=_dict_action(), default={},
                        help='override config entries, key=value pairs')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_visualization(cfg, args) -> None:
    """Turn on the config's visualization hook (mmseg SegVisualizationHook / mmdet DetVisualizationHook)."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise SystemExit('error: --show/--show-dir need a `visualization` hook in default_hooks '
                         '(the mmseg/mmdet default_runtime bases have one)')
    hook = hooks['visualization']
    hook['draw'] = True
    hook['interval'] = args.show_interval
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        show_dir = osp.abspath(args.show_dir)
        if cfg.get('default_scope') == 'mmdet':
            hook['test_out_dir'] = show_dir  # mmdet writes one file per image there
        else:
            cfg.visualizer['save_dir'] = show_dir  # mmseg: the visualizer's local backend
            cfg.visualizer['vis_backends'] = [dict(type='LocalVisBackend')]


def plain(value):
    """numpy scalars/arrays (mmseg's IoUMetric returns them) as Python numbers/lists."""
    if hasattr(value, 'tolist'):
        return value.tolist()
    return value


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.amp:
        require_cuda_for_amp()
    cfg = load_config(args)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'error: checkpoint {args.checkpoint!r} not found')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    if args.show or args.show_dir:
        enable_visualization(cfg, args)

    runner = build_runner(cfg)
    metrics = {k: plain(v) for k, v in runner.test().items()}
    if runner.rank == 0:
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}
        print('metrics: ' + json.dumps(shown, default=str), flush=True)
        if args.out:
            os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
            with open(args.out, 'w') as f:
                json.dump(metrics, f, indent=2, default=str)
        if args.show_dir:
            print(f'pictures (ground truth | prediction) in {osp.abspath(args.show_dir)}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
