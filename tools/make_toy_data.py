#!/usr/bin/env python
"""Write small, deterministic toy datasets in the layouts mmseg's ADE20K and mmdet's COCO readers use.

Procedural scenes (numpy + OpenCV only) of four object classes on textured backgrounds; the
layouts and the drawing: :mod:`mmvit_plugin.apis.toy_data`. Every image depends only on (--seed,
split, index), so a dataset is reproducible byte for byte and a larger dataset starts with the
images of a smaller one.

Examples::

    python tools/make_toy_data.py --kind ade  --out data/toy_ade  --train 240 --val 40
    python tools/make_toy_data.py --kind coco --out data/toy_coco --train 240 --val 40 --mask-format rle
"""
import argparse
import sys

from mmvit_plugin.apis.toy_data import make_toy_data


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--kind', choices=['ade', 'coco'], required=True,
                   help='ade: ADE20K layout (semantic seg); coco: COCO instances layout')
    p.add_argument('--out', required=True, help='dataset root to write')
    p.add_argument('--train', type=int, default=240, help='training images')
    p.add_argument('--val', type=int, default=40, help='validation images')
    p.add_argument('--size', type=int, default=128, help='image side in pixels')
    p.add_argument('--max-objects', type=int, default=5, help='objects per image (at least 2)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--mask-format', choices=['polygon', 'rle'], default='polygon',
                   help='COCO instance masks as polygons (from contours) or compressed RLE')
    args = p.parse_args(argv)
    if args.train < 1 or args.val < 1 or args.size < 32 or args.max_objects < 2:
        p.error('need --train/--val >= 1, --size >= 32, --max-objects >= 2')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    make_toy_data(args.kind, args.out, args.train, args.val, args.size, args.max_objects,
                  args.seed, args.mask_format)
    return 0


if __name__ == '__main__':
    sys.exit(main())
