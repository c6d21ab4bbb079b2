#!/usr/bin/env python
"""Predict on an image or a folder of images and save pictures of the predictions.

Segmentation configs (``default_scope='mmseg'``): a colour overlay of the predicted classes.
Detection configs (``default_scope='mmdet'``): boxes, class names, scores and instance masks.

Examples::

    python tools/infer.py demo.jpg configs/upernet_cswin_t_ade20k.py ckpt.pth --out-dir vis
    python tools/infer.py data/toy_coco/val2017 configs/toy/mask_rcnn_cswin_toy.py ckpt.pth \\
        --out-dir vis --score-thr 0.5

CKPT is a local path or any URI mmengine reads (https://, s3://, ...), loaded weights-only.
"""
import argparse
import sys

from mmvit_plugin.apis import infer
from mmvit_plugin.apis.cli import dict_action


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw predicted masks/boxes over images')
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='a whole-model checkpoint: a path, or any URI '
                        'load_from takes (https://, s3://, ...)')
    parser.add_argument('--out-dir', default='infer_out', help='where the pictures go')
    parser.add_argument('--device', default=None, help="e.g. 'cpu', 'cuda:0' (default: cuda if any)")
    parser.add_argument('--score-thr', type=float, default=0.3, help='detection: lowest score drawn')
    parser.add_argument('--opacity', type=float, default=0.5, help='segmentation: overlay opacity')
    parser.add_argument('--limit', type=int, default=0, help='at most this many images (0: all)')
    parser.add_argument('--cfg-options', nargs='+', default={}, action=dict_action(),
                        help='override config entries, key=value pairs')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return infer(args.input, args.config, args.checkpoint, args.out_dir, args.device,
                 args.score_thr, args.opacity, args.limit, args.cfg_options)


if __name__ == '__main__':
    sys.exit(main())
