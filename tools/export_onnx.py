#!/usr/bin/env python
"""Export a backbone, a segmentor or a detector's backbone + neck to ONNX for any input size, and
check the file in onnxruntime against PyTorch before keeping it.

    python tools/export_onnx.py configs/upernet_cswin_t_ade20k.py CKPT --out upernet_cswin_t.onnx
    python tools/export_onnx.py configs/upernet_cswin_t_ade20k.py --backbone-only --out cswin_t.onnx
    python tools/export_onnx.py configs/mask_rcnn_swin_t_coco_1x.py CKPT --out swin_t_fpn.onnx \\
        --shape 800 1344 --check-shapes 480x640 801x1333

Segmentors export whole (``mode='tensor'``: the decode head's logits), detectors their backbone
and neck (the heads and NMS are left to mmdeploy), ``--backbone-only`` the backbone. Batch, height
and width are dynamic; the written file is run in onnxruntime at the traced size and at
``--check-shapes`` against PyTorch, and kept only if every output agrees within ``--rtol``
(otherwise exit status 1 and the table of errors). Without CKPT the model keeps its random
initialisation. What is exported and how: :mod:`mmvit_plugin.deploy.onnx`.
"""
import argparse
import sys
from typing import List, Optional

from mmvit_plugin.apis.cli import dict_action, parse_size
from mmvit_plugin.deploy.onnx import DEFAULT_CHECK_SHAPES, DEFAULT_SHAPE, export_onnx


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file (mmseg segmentor or mmdet detector)')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='whole-model checkpoint (path or URI); omitted: random weights')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--shape', type=int, nargs=2, default=list(DEFAULT_SHAPE),
                        metavar=('H', 'W'), help='input size to trace at (default 512 512); '
                        'take one where every stage spans at least two windows each way')
    parser.add_argument('--check-shapes', type=parse_size, nargs='+',
                        default=list(DEFAULT_CHECK_SHAPES), metavar='HxW',
                        help='other sizes the file is checked at (default 333x517 97x131)')
    parser.add_argument('--backbone-only', action='store_true',
                        help='export the backbone alone (its feature maps)')
    parser.add_argument('--rtol', type=float, default=1e-4,
                        help='largest allowed max|onnx - torch| / max|torch| per output')
    parser.add_argument('--opset', type=int, default=None, help="ONNX opset (default: torch's)")
    parser.add_argument('--json', default=None, help='also write the check report here')
    parser.add_argument('--cfg-options', nargs='+', action=dict_action(), default={},
                        help='override config entries, key=value pairs')
    args = parser.parse_args(argv)
    if min(args.shape) < 1:
        parser.error(f'--shape must be positive, got {args.shape}')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return export_onnx(args.config, args.checkpoint, args.out, args.shape, args.check_shapes,
                       args.backbone_only, args.rtol, args.opset, args.cfg_options, args.json)


if __name__ == '__main__':
    sys.exit(main())
