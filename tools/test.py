#!/usr/bin/env python
"""Evaluate a checkpoint of a segmentor or a detector (mmseg or mmdet config alike).

Prints the metrics the config's test evaluator computes (mIoU/mAcc/aAcc for mmseg's IoUMetric,
box and mask AP for mmdet's CocoMetric) and can save pictures of the predictions next to the
ground truth (``--show-dir``). The options mean what they mean in the config's toolkit:

* ``--out``: mmseg configs: a directory for the predicted label maps (one PNG per image, ADE20K
  label values, as mmseg's test.py); mmdet configs: a ``.pkl`` file of the predictions
  (mmdet's ``DumpDetResults``, for offline evaluation).
* ``--tta``: the config's ``tta_model`` and ``tta_pipeline``: for the UperNet configs the
  published multi-scale (0.5-1.75) + flip protocol; for the RetinaNet configs mmdet's RetinaNet
  TTA. mmdet 3.3 has no TTA for instance segmentation, so the Mask R-CNN configs have none.
* ``--metrics-out FILE``: also write the metrics as JSON (this tool's own option).
* ``--data-root DIR``: the dataset folder for every dataloader and evaluator of the config
  (this tool's own option; tools/train.py has it too). A test dataset that is not there is one
  error listing the missing paths, before the model is built.

CKPT is a local path or any URI mmengine reads (https://, s3://, ...), loaded weights-only.

Examples::

    python tools/test.py configs/upernet_cswin_t_ade20k.py work_dirs/x/iter_160000.pth
    python tools/test.py configs/upernet_cswin_t_ade20k.py CKPT --tta --metrics-out ms_flip.json
    python tools/test.py configs/mask_rcnn_swin_t_coco_1x.py CKPT --out results.pkl
    python tools/test.py configs/mask_rcnn_swin_t_coco_1x.py CKPT --data-root /data/coco
    python tools/test.py CONFIG CKPT --show-dir vis
    tools/dist_test.sh CONFIG CKPT 8
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from train import (DATA_ROOT_HELP, _dict_action, build_runner, check_data,  # noqa: E402
                   checkpoint_uri, load_config, require_cuda_for_amp)

#: What ``--out`` writes, per toolkit (the config's default_scope), as in its own test.py.
OUT_HELP = {'mmseg': 'a directory for the predicted label maps (PNG)',
            'mmdet': 'a .pkl file of the predictions'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (evaluate) a segmentor or detector')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='a whole-model mmengine checkpoint: a path, or any URI '
                        'load_from takes (https://, s3://, ...)')
    parser.add_argument('--work-dir', help='where the evaluation log and metrics go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--out', help='save the predictions, as the config\'s toolkit does: '
                        'mmseg: a directory of label-map PNGs; mmdet: a .pkl file')
    parser.add_argument('--data-root', metavar='DIR', help=DATA_ROOT_HELP)
    parser.add_argument('--metrics-out', metavar='FILE', help='also write the metrics to this '
                        'JSON file')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation with the '
                        'config\'s tta_model and tta_pipeline (UperNet: multi-scale + flip)')
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


def enable_tta(cfg, config: str) -> None:
    """Test through the config's ``tta_model`` on ``tta_pipeline`` (as mmseg's and mmdet's test.py,
    but a config without them is an error, not a silent default)."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
    if missing:
        why = (' (mmdet 3.3\'s DetTTAModel merges boxes only: instance segmentation has no TTA; '
               'the RetinaNet configs have one)' if cfg.get('default_scope') == 'mmdet' else '')
        raise SystemExit(f'error: --tta: {config} defines no {" / ".join(missing)}{why}')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = dict(cfg.tta_model, module=cfg.model)


def save_predictions(cfg, out: str) -> None:
    """``--out`` for mmseg configs: IoUMetric writes each predicted label map into ``out``."""
    evaluator = cfg.test_evaluator
    if not isinstance(evaluator, dict) or evaluator.get('type') != 'IoUMetric':
        raise SystemExit('error: --out for an mmseg config needs test_evaluator = '
                         f'dict(type=\'IoUMetric\', ...); this config has {evaluator!r}')
    evaluator['output_dir'] = osp.abspath(out)


def dump_detections(runner, out: str) -> None:
    """``--out`` for mmdet configs: mmdet's DumpDetResults pickles the predictions to ``out``."""
    from mmdet.evaluation import DumpDetResults
    runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out))


def plain(value):
    """numpy scalars/arrays (mmseg's IoUMetric returns them) as Python numbers/lists."""
    if hasattr(value, 'tolist'):
        return value.tolist()
    return value


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.amp:
        require_cuda_for_amp()
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir, args.data_root)
    scope = cfg.get('default_scope')
    if args.out and scope not in OUT_HELP:
        raise SystemExit(f'error: --out: default_scope {scope!r}; only mmseg and mmdet configs')
    if args.out and scope == 'mmdet' and not args.out.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'error: --out {args.out}: for an mmdet config --out is {OUT_HELP[scope]} '
                         '(name ending in .pkl); --metrics-out FILE writes the metrics as JSON')
    cfg.load_from = checkpoint_uri(args.checkpoint, 'checkpoint')
    cfg.resume = False
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.tta:
        enable_tta(cfg, args.config)
    if args.out and scope == 'mmseg':
        save_predictions(cfg, args.out)
    check_data(cfg, 'test')

    runner = build_runner(cfg)
    if args.out and scope == 'mmdet':
        dump_detections(runner, args.out)
    from mmvit_plugin.checkpoint import CheckpointError
    try:
        metrics = {k: plain(v) for k, v in runner.test().items()}
    except CheckpointError as err:  # the weights did not fill the model: no figure is printed
        raise SystemExit(f'error: {err}') from None
    if runner.rank == 0:
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}
        print('metrics: ' + json.dumps(shown, default=str), flush=True)
        if args.metrics_out:
            os.makedirs(osp.dirname(osp.abspath(args.metrics_out)), exist_ok=True)
            with open(args.metrics_out, 'w') as f:
                json.dump(metrics, f, indent=2, default=str)
        if args.out:
            print(f'predictions ({OUT_HELP[scope]}) in {osp.abspath(args.out)}', flush=True)
        if args.show_dir:
            print(f'pictures (ground truth | prediction) in {osp.abspath(args.show_dir)}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
