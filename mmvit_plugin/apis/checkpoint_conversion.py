"""Converting a backbone checkpoint from any supported layout to this package's keys, into a file
(tools/convert_checkpoint.py).

The backbones load these files directly through ``init_cfg=dict(type='Pretrained', ...)`` or a
whole-model ``load_from``; this writes the same conversion to a file (``{'state_dict': ..., 'meta':
...}``), e.g. to inspect it or to use it with tools that expect our layout. The layout detected
(official, mmseg/mmdet/mmpretrain, timm, Hugging Face, ...) is printed and kept in ``meta``. With
``arch`` the result is checked against that backbone with the rule of a Pretrained load: a file
that fills less than half of it is an error; missing, wrong-shaped and unexpected keys are listed.
"""
import ast
import io
import sys
from typing import Optional

from mmvit_plugin.models.families import (backbone_class, checkpoint_converter,
                                          checkpoint_layout)


def parse_arch(text: str):
    """An arch given on a command line: a name (``tiny``) or a dict literal."""
    return ast.literal_eval(text) if text.lstrip().startswith('{') else text


def convert_checkpoint(family: str, src: str, dst: str, window_size: Optional[int] = None,
                       arch: Optional[str] = None, prefix: str = 'backbone.') -> int:
    """Read ``src`` (a path or URL, weights-only; in whole-model files the keys under ``prefix``),
    convert it to our layout and write it atomically to ``dst``; 0, or 1 with the error on stderr
    (nothing written). ``window_size``: Swin only, resize the relative position bias tables."""
    import torch
    from mmvit_plugin.checkpoint import CheckpointError, load_backbone_state_dict
    from mmvit_plugin.engine import AtomicLocalBackend, load_weights

    converter = checkpoint_converter(family)
    if window_size is not None and family != 'swin':
        sys.exit('--window-size applies to swin only')
    try:
        state_dict = load_backbone_state_dict(src, prefix)
        layout = checkpoint_layout(family)(state_dict)
        print(f'{src}: {len(state_dict)} tensors, layout: {layout}')
        kwargs = {'window_size': window_size} if family == 'swin' else {}
        converted = converter(state_dict, **kwargs)
        if arch is not None:
            build_kwargs = {'window_size': window_size} if window_size else {}
            cls = backbone_class(family)
            model = cls(arch=parse_arch(arch), **build_kwargs)
            # the model converts the file itself on load, as a Pretrained init would
            fit = load_weights(model, state_dict, 'train', source=src)
            print(f'checked against {cls.__name__}(arch={arch!r}): {fit.filled} of '
                  f'{fit.total} tensors filled; {len(fit.missing)} missing {fit.missing[:8]}, '
                  f'{len(fit.mismatched)} of another shape {list(fit.mismatched)[:8]}, '
                  f'{len(fit.unexpected)} unexpected {fit.unexpected[:8]}')
    except (CheckpointError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    buffer = io.BytesIO()
    torch.save({'state_dict': converted,
                'meta': {'source': src, 'family': family, 'layout': layout,
                         'converter': f'convert_{family}_checkpoint'}},
               buffer)
    AtomicLocalBackend().put(buffer.getvalue(), dst)
    print(f'wrote {len(converted)} tensors to {dst}')
    return 0
