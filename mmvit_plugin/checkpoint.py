"""Reading checkpoints, safely, from a path or a URI, and finding the weights inside them.

Every read is weights-only: torch's ``weights_only=True`` unpickler, or safetensors. A file that
needs unsafe unpickling is refused with :class:`CheckpointError` whatever the path or scheme:

- local paths (``~`` expanded);
- ``http://`` / ``https://``: downloaded once into torch's hub cache (``<torch hub
  dir>/checkpoints``, as torch and mmengine do), with a progress bar; rank 0 downloads first in
  distributed runs;
- mmengine's other schemes (``open-mmlab://``, ``torchvision://``, ``mmcls://``, ``s3://``,
  ``petrel://``, ``pavi://``) go through mmengine's ``CheckpointLoader``, whose loaders
  :mod:`mmvit_plugin.engine` replaces with weights-only ones when the package is imported.

Layouts met in the wild (see SPEC.md): ``{'model': sd}`` (Swin, MPViT classification),
``{'state_dict': sd, 'state_dict_ema': sd}`` (CSWin, timm's saver), a flat dict (CvT, timm,
safetensors files), and mmseg / mmdet / mmengine whole-model checkpoints
``{'state_dict': {'backbone.…': …}}``; a ``module.`` prefix (DataParallel) also occurs.

This module imports neither the models nor mmcv: the engine and the models both build on it.
"""
import hashlib
import io
import os
import os.path as osp
import pickle
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import torch

StateDict = Dict[str, torch.Tensor]
PathLike = Union[str, os.PathLike]

#: Where each layout keeps its weights, in the order the official loaders try them.
WRAPPER_KEYS = ('state_dict', 'state_dict_ema', 'model')
#: Seconds without an answer before a download gives up.
DOWNLOAD_TIMEOUT_S = 60
_URL = re.compile(r'^https?://', re.IGNORECASE)
_SCHEME = re.compile(r'^[A-Za-z][\w+.-]*://')


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: missing, unreachable, truncated, unsafe or of another model."""


def is_url(uri: PathLike) -> bool:
    return bool(_URL.match(os.fspath(uri)))


def is_uri(uri: PathLike) -> bool:
    """Whether ``uri`` names a scheme (``https://``, ``s3://``, ``open-mmlab://``…), not a path."""
    return bool(_SCHEME.match(os.fspath(uri)))


def read_checkpoint(uri: PathLike, map_location: Any = 'cpu') -> Any:
    """The object saved in a checkpoint at a local path or URI, read weights-only.

    ``.safetensors`` files (recognised by their header, whatever their name) give their flat
    dict of tensors.
    """
    uri = os.fspath(uri)
    if is_url(uri):
        return read_url_checkpoint(uri, map_location)
    if is_uri(uri):
        from mmengine.runner.checkpoint import CheckpointLoader
        return CheckpointLoader.load_checkpoint(uri, map_location=map_location)
    return read_local_checkpoint(osp.expanduser(uri), map_location)


def read_local_checkpoint(path: str, map_location: Any = 'cpu', source: Optional[str] = None) -> Any:
    """Read a local file weights-only; errors name ``source`` (the URI it came from) or the path."""
    name = repr(source or path)
    if not osp.isfile(path):
        raise CheckpointError(f'checkpoint file not found: {name}')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'checkpoint {name} is empty (0 bytes)')
    with open(path, 'rb') as f:
        head = f.read(16)
    if _is_safetensors_header(head):
        return _read_safetensors(path, map_location, name)
    return _torch_load(path, map_location, name)


def read_url_checkpoint(url: str, map_location: Any = 'cpu') -> Any:
    """An ``http(s)://`` checkpoint: downloaded once into the hub cache, then read weights-only."""
    return read_local_checkpoint(download_checkpoint(url), map_location, source=url)


def read_checkpoint_bytes(data: bytes, map_location: Any = 'cpu', source: str = 'checkpoint') -> Any:
    """Like :func:`read_local_checkpoint`, for a file's contents held in memory."""
    if not data:
        raise CheckpointError(f'checkpoint {source!r} is empty (0 bytes)')
    if _is_safetensors_header(data[:16]):
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'checkpoint.safetensors')
            with open(path, 'wb') as f:
                f.write(data)
            return _read_safetensors(path, map_location, repr(source))
    return _torch_load(io.BytesIO(data), map_location, repr(source))


def _is_safetensors_header(head: bytes) -> bool:
    # 8-byte little-endian header length, then the JSON header itself.
    return len(head) > 9 and head[8:9] == b'{' and 0 < int.from_bytes(head[:8], 'little') < 10**9


def _read_safetensors(path: str, map_location: Any, name: str) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    device = map_location if isinstance(map_location, (str, torch.device)) else 'cpu'
    try:
        return load_file(path, device=str(device))
    except (SafetensorError, ValueError, OSError) as err:
        raise CheckpointError(f'checkpoint {name} is a truncated or corrupted safetensors file '
                              f'({type(err).__name__}: {err})') from err


def _torch_load(file: Union[str, io.BytesIO], map_location: Any, name: str) -> Any:
    try:
        return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if 'Weights only load failed' in str(err):
            reason = next((line.strip() for line in str(err).splitlines()
                           if 'WeightsUnpickler error' in line), '')
            raise CheckpointError(
                f'checkpoint {name} holds Python objects that weights-only loading refuses, so it '
                'was not loaded (unpickling it could run code). Load it only if you trust it, and '
                f'save its tensors as a plain dict of tensors or as safetensors ({reason})'
            ) from err
        raise CheckpointError(f'checkpoint {name} is truncated or corrupted '
                              f'({type(err).__name__}: {err})') from err
    except RuntimeError as err:
        if not _CORRUPTION.search(str(err)):
            # The file is whole but cannot be loaded here (e.g. saved on CUDA, no GPU present).
            raise CheckpointError(f'checkpoint {name} could not be loaded: {err}') from err
        raise CheckpointError(f'checkpoint {name} is truncated or corrupted '
                              f'({type(err).__name__}: {err})') from err
    except Exception as err:  # noqa: BLE001
        # EOFError, BadZipFile, or the unpickler stumbling over bytes that are no pickle at all.
        raise CheckpointError(f'checkpoint {name} is truncated or corrupted '
                              f'({type(err).__name__}: {err})') from err


#: What torch's RuntimeErrors say when the bytes themselves are bad.
_CORRUPTION = re.compile(r'PytorchStreamReader|zip archive|central directory|magic number|corrupt|EOF',
                         re.IGNORECASE)


# --- downloads ----------------------------------------------------------------------------------
def checkpoint_cache_dir() -> str:
    """Where downloads go: ``<torch hub dir>/checkpoints``, shared with torch and mmengine."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def download_checkpoint(url: str, progress: Optional[bool] = None) -> str:
    """The local path of ``url`` in the hub cache, downloading it first if needed.

    The file keeps the URL's file name (so that files torch or mmengine downloaded are reused);
    another URL with a name already taken (two hubs' ``model.safetensors``) gets a name prefixed
    by a hash of its URL. In a distributed run rank 0 downloads and the others wait for it.
    """
    from mmengine.dist import barrier, get_dist_info
    rank, world_size = get_dist_info()
    if rank == 0:
        path = _download(url, progress)
    if world_size > 1:
        barrier()
        if rank > 0:
            path = _download(url, progress)
    return path


def _cache_path(url: str) -> str:
    cache = checkpoint_cache_dir()
    name = osp.basename(urllib.parse.urlparse(url).path) or 'checkpoint'
    path = osp.join(cache, name)
    source = path + '.url'
    if osp.isfile(path) and osp.isfile(source):
        with open(source) as f:
            if f.read().strip() != url:
                digest = hashlib.sha256(url.encode()).hexdigest()[:12]
                path = osp.join(cache, f'{digest}-{name}')
    return path


def _download(url: str, progress: Optional[bool]) -> str:
    path = _cache_path(url)
    if osp.isfile(path):
        return path
    os.makedirs(osp.dirname(path), exist_ok=True)
    if progress is None:
        progress = sys.stderr.isatty()
    sys.stderr.write(f'Downloading {url} to {path}\n')
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(path), prefix='.download-', suffix='.part')
    try:
        request = urllib.request.Request(url, headers={'User-Agent': 'mmvit_plugin'})
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, \
                os.fdopen(fd, 'wb') as out:
            total = int(response.headers.get('Content-Length') or 0) or None
            _copy_with_progress(response, out, total, progress)
            if total is not None and out.tell() != total:
                raise CheckpointError(f'the download of {url} stopped after {out.tell()} of '
                                      f'{total} bytes; run again to retry')
        os.replace(tmp, path)
        with open(path + '.url', 'w') as f:
            f.write(url + '\n')
    except (urllib.error.URLError, OSError, ValueError) as err:
        # HTTPError's str() has the status code; URLError's reason says what failed to connect
        reason = err if isinstance(err, urllib.error.HTTPError) else getattr(err, 'reason', err)
        raise CheckpointError(
            f'could not download the checkpoint {url} ({reason}). Without network access, '
            f'download it on another machine, copy it here and point the config at the file, '
            f"e.g. --cfg-options model.backbone.init_cfg.checkpoint=/path/to/{osp.basename(path)} "
            f'(backbone weights) or load_from=/path/to/{osp.basename(path)} (a whole model)'
        ) from err
    finally:
        if osp.exists(tmp):
            os.unlink(tmp)
    return path


def _copy_with_progress(src: Any, dst: Any, total: Optional[int], progress: bool) -> None:
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit='B', unit_scale=True, unit_divisor=1024, file=sys.stderr)
    try:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            dst.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()


# --- finding the weights ------------------------------------------------------------------------
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


def load_backbone_state_dict(uri: PathLike, prefix: Optional[str] = 'backbone.') -> StateDict:
    """Read ``uri`` and return the backbone's weights, in whatever layout the file has them."""
    return strip_prefix(unwrap_state_dict(read_checkpoint(uri), source=repr(os.fspath(uri))), prefix)


# --- renaming keys ------------------------------------------------------------------------------
#: A key-renaming rule: a regex matched at the start of a key, and its replacement (``re.sub``
#: syntax, or a function of the match).
KeyRule = Tuple['re.Pattern[str]', Union[str, Callable[['re.Match[str]'], str]]]


def rename_keys(state_dict: StateDict, rules: Sequence[KeyRule]) -> StateDict:
    """Each key renamed by the first rule whose pattern matches it (others kept as they are)."""
    out: StateDict = {}
    for key, value in state_dict.items():
        for pattern, repl in rules:
            new_key, count = pattern.subn(repl, key, count=1)
            if count:
                key = new_key
                break
        out[key] = value
    return out
