#!/usr/bin/env python
"""Train a segmentor or a detector from an OpenMMLab 2.0 config (mmseg or mmdet alike).

A thin wrapper over ``mmengine.runner.Runner``: the registry scope comes from the config's
``default_scope`` (``mmseg`` or ``mmdet``, set by the mm ``default_runtime`` bases), and the
config's ``custom_imports`` registers this package's backbones. What it adds to mmseg's / mmdet's
train.py: see :func:`mmvit_plugin.apis.train`.

Examples::

    python tools/train.py configs/upernet_cswin_t_ade20k.py --work-dir work_dirs/cswin_t
    python tools/train.py CONFIG --resume                  # latest checkpoint in the work dir
    python tools/train.py CONFIG --resume work_dirs/x/iter_8000.pth
    python tools/train.py CONFIG --resume https://host/iter_8000.pth   # any mmengine URI
    python tools/train.py CONFIG --cfg-options train_dataloader.batch_size=4 --amp
    python tools/train.py CONFIG --cfg-options model.backbone.init_cfg.checkpoint=None  # scratch
    python tools/train.py configs/mask_rcnn_swin_t_coco_1x.py --data-root /data/coco  # elsewhere
    tools/dist_train.sh CONFIG 4 --auto-scale-lr           # 4 GPUs, lr scaled from 16 to 8 images
"""
import argparse
import sys

from mmvit_plugin.apis import train
from mmvit_plugin.apis.cli import (DATA_ROOT_HELP, add_launcher_arguments, dict_action,
                                   set_local_rank)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor or detector (mmengine Runner)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: the config\'s work_dir, else ./work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto', default=None,
                        metavar='CKPT',
                        help='resume training: from CKPT (a path, or any URI load_from takes: '
                        'https://, s3://, ...), or, without CKPT, from the latest checkpoint in '
                        'the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (AmpOptimWrapper); needs a CUDA GPU')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate linearly from the config\'s '
                        'auto_scale_lr.base_batch_size (16, the recipes\' total batch) to this '
                        'run\'s total batch (GPUs x train_dataloader.batch_size)')
    parser.add_argument('--data-root', metavar='DIR', help=DATA_ROOT_HELP)
    parser.add_argument('--cfg-options', nargs='+', action=dict_action(), default={},
                        help='override config entries, key=value pairs such as '
                        'train_cfg.max_iters=100 "model.backbone.arch=small" (applied after '
                        '--data-root)')
    add_launcher_arguments(parser, help='job launcher (pytorch: torchrun; slurm: srun)')
    return set_local_rank(parser.parse_args(argv))


def main(argv=None) -> int:
    args = parse_args(argv)
    return train(args.config, args.work_dir, args.resume, args.amp, args.auto_scale_lr,
                 args.data_root, args.cfg_options, args.launcher)


if __name__ == '__main__':
    sys.exit(main())
