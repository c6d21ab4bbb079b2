#!/usr/bin/env python
"""Convert a backbone checkpoint from any supported layout to mmvit_plugin's keys.

    python tools/convert_checkpoint.py cswin cswin_tiny_224.pth cswin_tiny_mmvit.pth
    python tools/convert_checkpoint.py swin swin_base_patch4_window12_384.pth out.pth --window-size 7
    python tools/convert_checkpoint.py swin model.safetensors out.pth --arch tiny   # timm / HF hub file

The backbones load these files directly through ``init_cfg=dict(type='Pretrained', ...)`` or a
whole-model ``load_from``; this writes the same conversion to a file (``{'state_dict': ..., 'meta':
...}``), e.g. to inspect it or to use it with tools that expect our layout. The layout detected
(official, mmseg/mmdet/mmpretrain, timm, Hugging Face, ...) is printed and kept in ``meta``. With
``--arch`` the result is checked against that backbone with the rule of a Pretrained load: a file
that fills less than half of it is an error; missing, wrong-shaped and unexpected keys are listed.
"""
import argparse
import ast
import importlib
import sys
from typing import Callable, Dict, Tuple

import torch

# family -> (module, backbone class); the module has convert_<family>_checkpoint and
# <family>_checkpoint_layout
FAMILIES: Dict[str, Tuple[str, str]] = {
    'swin': ('mmvit_plugin.models.backbones.swin', 'Swin'),
    'cswin': ('mmvit_plugin.models.backbones.cswin', 'CSWin'),
    'cvt': ('mmvit_plugin.models.backbones.cvt', 'CvT'),
    'mpvit': ('mmvit_plugin.models.backbones.mpvit', 'MPViT'),
}


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
    from mmvit_plugin.engine import AtomicLocalBackend
    from mmvit_plugin.checkpoint import CheckpointError, load_backbone_state_dict
    from mmvit_plugin.engine import load_weights

    module_name, class_name = FAMILIES[args.family]
    module = importlib.import_module(module_name)
    converter_name = f'convert_{args.family}_checkpoint'
    converter: Callable = getattr(module, converter_name)
    layout_of: Callable = getattr(module, f'{args.family}_checkpoint_layout')
    if args.window_size is not None and args.family != 'swin':
        sys.exit('--window-size applies to swin only')
    try:
        state_dict = load_backbone_state_dict(args.src, args.prefix)
        layout = layout_of(state_dict)
        print(f'{args.src}: {len(state_dict)} tensors, layout: {layout}')
        kwargs = {'window_size': args.window_size} if args.family == 'swin' else {}
        converted = converter(state_dict, **kwargs)
        if args.arch is not None:
            build_kwargs = {'window_size': args.window_size} if args.window_size else {}
            arch = ast.literal_eval(args.arch) if args.arch.lstrip().startswith('{') else args.arch
            model = getattr(module, class_name)(arch=arch, **build_kwargs)
            # the model converts the file itself on load, as a Pretrained init would
            fit = load_weights(model, state_dict, 'train', source=args.src)
            print(f'checked against {class_name}(arch={args.arch!r}): {fit.filled} of '
                  f'{fit.total} tensors filled; {len(fit.missing)} missing {fit.missing[:8]}, '
                  f'{len(fit.mismatched)} of another shape {list(fit.mismatched)[:8]}, '
                  f'{len(fit.unexpected)} unexpected {fit.unexpected[:8]}')
    except (CheckpointError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    import io
    buffer = io.BytesIO()
    torch.save({'state_dict': converted,
                'meta': {'source': args.src, 'family': args.family, 'layout': layout,
                         'converter': converter_name}},
               buffer)
    AtomicLocalBackend().put(buffer.getvalue(), args.dst)
    print(f'wrote {len(converted)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
