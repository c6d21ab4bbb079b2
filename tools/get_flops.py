#!/usr/bin/env python
"""Whole-model FLOPs (multiply-accumulates) and parameters of a segmentor or detector config.

Builds the model from an OpenMMLab 2.0 config (``default_scope`` ``mmseg`` or ``mmdet``; the
config's ``custom_imports`` registers this package's backbones), puts it in eval mode and traces
one image of the given size through mmengine's FlopAnalyzer, with a handle for
``F.scaled_dot_product_attention`` (which it would otherwise count as zero). Counts are
multiply-accumulates, the "FLOPs" of mmseg/mmdet's get_flops and of the Swin/CSWin papers. What
is counted (the auxiliary head left out, detectors' RoI heads on 1000 proposals, MPViT's
structural zeros left out): :mod:`mmvit_plugin.benchmark.model_flops`.

Examples::

    python tools/get_flops.py configs/upernet_swin_t_ade20k.py               # 512x2048
    python tools/get_flops.py configs/upernet_cswin_t_ade20k.py --shape 512 512 --json out.json
    python tools/get_flops.py configs/mask_rcnn_swin_t_coco_1x.py            # 1280x800
    python tools/get_flops.py CONFIG --shape 640 --cfg-options model.backbone.arch=small
"""
import argparse
import sys
from typing import List, Optional

from mmvit_plugin.apis.cli import dict_action
from mmvit_plugin.benchmark.model_flops import get_flops


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('--shape', type=int, nargs='+', default=None, metavar='SIZE',
                        help='input H W, or N for N x N (default: 512 2048 for segmentors as the '
                        'Swin/CSWin UperNet results; 1280 800 for detectors as mmdet 2.x\'s '
                        'get_flops and the Swin paper)')
    parser.add_argument('--cfg-options', nargs='+', action=dict_action(), default={},
                        help='override config entries, key=value pairs')
    parser.add_argument('--json', default=None, help='also write the results here')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    get_flops(args.config, args.shape, args.cfg_options, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
