#!/usr/bin/env python
"""Convert an official backbone checkpoint to mmvit_plugin's key layout.

    python tools/convert_checkpoint.py cswin cswin_tiny_224.pth cswin_tiny_mmvit.pth
    python tools/convert_checkpoint.py swin swin_base_patch4_window12_384.pth out.pth --window-size 7

The backbones load official files directly through ``init_cfg=dict(type='Pretrained', ...)``; this
writes the same conversion to a file (``{'state_dict': ..., 'meta': ...}``), e.g. to inspect it or to
use it with tools that expect our layout. With ``--arch`` the result is checked against that
backbone: every tensor must fit, and missing/unexpected keys are listed.
"""
import argparse
import importlib
import sys
from typing import Callable, Dict, Tuple

import torch

# family -> (module, converter, backbone class)
FAMILIES: Dict[str, Tuple[str, str, str]] = {
    'swin': ('mmvit_plugin.models.backbones.swin', 'convert_swin_checkpoint', 'Swin'),
    'cswin': ('mmvit_plugin.models.backbones.cswin', 'convert_cswin_checkpoint', 'CSWin'),
    'cvt': ('mmvit_plugin.models.backbones.cvt', 'convert_cvt_checkpoint', 'CvT'),
    'mpvit': ('mmvit_plugin.models.backbones.mpvit', 'convert_mpvit_checkpoint', 'MPViT'),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('family', choices=sorted(FAMILIES), help='backbone family of the source')
    parser.add_argument('src', help='official checkpoint (any supported layout)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--window-size', type=int, default=None,
                        help='swin only: resize relative position bias tables to this window')
    parser.add_argument('--arch', default=None,
                        help='check the result against this arch of the backbone (e.g. tiny)')
    parser.add_argument('--prefix', default='backbone.',
                        help='in whole-model files, keep the keys under this prefix')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmvit_plugin.engine import AtomicLocalBackend
    from mmvit_plugin.checkpoint import CheckpointError, load_backbone_state_dict

    module_name, converter_name, class_name = FAMILIES[args.family]
    module = importlib.import_module(module_name)
    converter: Callable = getattr(module, converter_name)
    if args.window_size is not None and args.family != 'swin':
        sys.exit('--window-size applies to swin only')
    try:
        state_dict = load_backbone_state_dict(args.src, args.prefix)
        kwargs = {'window_size': args.window_size} if args.family == 'swin' else {}
        converted = converter(state_dict, **kwargs)
        if args.arch is not None:
            build_kwargs = {'window_size': args.window_size} if args.window_size else {}
            model = getattr(module, class_name)(arch=args.arch, **build_kwargs)
            own = model.state_dict()
            wrong = [k for k in converted if k in own and converted[k].shape != own[k].shape]
            if wrong or not any(k in own for k in converted):
                raise CheckpointError(f'{args.src} does not fit {class_name}(arch={args.arch!r}): '
                                      f'{len(wrong)} wrong shapes, e.g. {wrong[:5]}')
            missing = [k for k in own if k not in converted]
            unexpected = [k for k in converted if k not in own]
            print(f'checked against {class_name}(arch={args.arch!r}): {len(missing)} missing '
                  f'{missing[:8]}, {len(unexpected)} unexpected {unexpected[:8]}')
    except (CheckpointError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    import io
    buffer = io.BytesIO()
    torch.save({'state_dict': converted,
                'meta': {'source': args.src, 'family': args.family, 'converter': converter_name}},
               buffer)
    AtomicLocalBackend().put(buffer.getvalue(), args.dst)
    print(f'wrote {len(converted)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
