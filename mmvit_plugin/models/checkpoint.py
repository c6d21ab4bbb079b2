"""Reading checkpoint files and finding the backbone weights inside them.

Layouts met in the wild (see SPEC.md): ``{'model': sd}`` (Swin, MPViT classification),
``{'state_dict': sd, 'state_dict_ema': sd}`` (CSWin, timm's saver), a flat dict (CvT), and
mmseg-0.x / mmdet-2.x / mmengine dense checkpoints ``{'state_dict': {'backbone.…': …}}``; a
``module.`` prefix (DataParallel) also occurs.
"""
import os
import pickle
from typing import Any, Dict, Optional

import torch

StateDict = Dict[str, torch.Tensor]

#: Where each layout keeps its weights, in the order the official loaders try them.
WRAPPER_KEYS = ('state_dict', 'state_dict_ema', 'model')


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used: missing, truncated, corrupted or of another model."""


def read_checkpoint(path: str, map_location: Any = 'cpu') -> Any:
    """``torch.load`` with ``weights_only=True`` and errors that say what is wrong with the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint file not found: {path!r}')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'checkpoint file {path!r} is empty (0 bytes)')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if 'Weights only load failed' in str(err):
            reason = next((line.strip() for line in str(err).splitlines()
                           if 'WeightsUnpickler error' in line), '')
            raise CheckpointError(
                f'checkpoint {path!r} holds Python objects that weights-only loading refuses; '
                f'load it only if you trust it, and save its tensors as a plain dict ({reason})'
            ) from err
        raise CheckpointError(f'checkpoint {path!r} is corrupted: {err}') from err
    except Exception as err:  # noqa: BLE001
        # EOFError, BadZipFile, torch's "PytorchStreamReader failed ...", or the unpickler
        # stumbling over bytes that are no pickle at all.
        raise CheckpointError(
            f'checkpoint {path!r} is truncated or corrupted ({type(err).__name__}: {err})') from err


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def unwrap_state_dict(checkpoint: Any, source: str = 'checkpoint') -> StateDict:
    """The state dict inside a checkpoint: ``state_dict``, ``state_dict_ema``, ``model``, or itself."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{source} holds a {type(checkpoint).__name__}, not a dict of weights')
    for key in WRAPPER_KEYS:
        if _is_state_dict(checkpoint.get(key)):
            return dict(checkpoint[key])
    if _is_state_dict(checkpoint):
        return dict(checkpoint)
    raise CheckpointError(
        f'{source} has no state dict: expected one of {WRAPPER_KEYS} holding tensors, or a flat '
        f'dict of tensors; its top-level keys are {sorted(checkpoint)[:10]}')


def strip_prefix(state_dict: StateDict, prefix: Optional[str] = 'backbone.') -> StateDict:
    """Drop ``module.``; where keys carry ``prefix`` (a whole detector or segmentor), keep only those."""
    state_dict = {k[len('module.'):] if k.startswith('module.') else k: v
                  for k, v in state_dict.items()}
    if prefix and any(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return state_dict


def load_backbone_state_dict(path: str, prefix: Optional[str] = 'backbone.') -> StateDict:
    """Read ``path`` and return the backbone's weights, in whatever layout the file has them."""
    return strip_prefix(unwrap_state_dict(read_checkpoint(path), source=repr(path)), prefix)
