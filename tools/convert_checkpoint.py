#!/usr/bin/env python
"""Convert a backbone checkpoint from any supported layout to mmvit_plugin's keys.

    python tools/convert_checkpoint.py cswin cswin_tiny_224.pth cswin_tiny_mmvit.pth
    python tools/convert_checkpoint.py swin swin_base_patch4_window12_384.pth out.pth --window-size 7
    python tools/convert_checkpoint.py swin model.safetensors out.pth --arch tiny   # timm / HF hub file

The backbones load these files directly through ``init_cfg=dict(type='Pretrained', ...)`` or a
whole-model ``load_from``; this writes the same conversion to a file (``{'state_dict': ..., 'meta':
...}``). The layout detected is printed and kept in ``meta``; with ``--arch`` the result is
checked against that backbone (see :mod:`mmvit_plugin.apis.checkpoint_conversion`).
"""
import argparse
import sys

from mmvit_plugin.apis.checkpoint_conversion import convert_checkpoint
from mmvit_plugin.models.families import FAMILIES


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('family', choices=sorted(FAMILIES), help='backbone family of the source')
    parser.add_argument('src', help='checkpoint in any supported layout (official, OpenMMLab, '
                        'timm, Hugging Face; .pth or .safetensors), path or URL')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--window-size', type=int, default=None,
                        help='swin only: resize relative position bias tables to this window')
    parser.add_argument('--arch', default=None,
                        help="check the result against this arch of the backbone: a name (e.g. "
                        "tiny) or a dict literal (e.g. \"{'embed_dims': 96, ...}\")")
    parser.add_argument('--prefix', default='backbone.',
                        help='in whole-model files, keep the keys under this prefix')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return convert_checkpoint(args.family, args.src, args.dst, args.window_size, args.arch,
                              args.prefix)


if __name__ == '__main__':
    sys.exit(main())
