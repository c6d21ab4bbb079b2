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
import sys

from mmvit_plugin.apis import evaluate
from mmvit_plugin.apis.cli import (DATA_ROOT_HELP, add_launcher_arguments, dict_action,
                                   set_local_rank)


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
    parser.add_argument('--cfg-options', nargs='+', action=dict_action(), default={},
                        help='override config entries, key=value pairs')
    add_launcher_arguments(parser)
    return set_local_rank(parser.parse_args(argv))


def main(argv=None) -> int:
    args = parse_args(argv)
    evaluate(args.config, args.checkpoint, args.work_dir, args.out, args.data_root,
             args.metrics_out, args.tta, args.show_dir, args.show_interval, args.show,
             args.wait_time, args.amp, args.cfg_options, args.launcher)
    return 0


if __name__ == '__main__':
    sys.exit(main())
