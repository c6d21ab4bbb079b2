"""Reading checkpoints, safely, from a path or a URI, and finding the weights inside them.

Every read is weights-only: torch's ``weights_only=True`` unpickler, or safetensors. A file that
needs unsafe unpickling is refused with :class:`CheckpointError` whatever the path or scheme:

- local paths (``~`` expanded);
- ``http://`` / ``https://``: downloaded once into torch's hub cache (``<torch hub
  dir>/checkpoints``, as torch and mmengine do), keyed by the URL and checked on reuse (see
  :func:`download_checkpoint`), with a progress bar; rank 0 downloads first in distributed runs;
- every other scheme mmengine's ``CheckpointLoader`` knows (``open-mmlab://``, ``torchvision://``,
  ``mmcls://``, ``s3://`` and ``cluster:s3://``, ``petrel://``, ``pavi://``, and any registered
  later) goes through it; :mod:`mmvit_plugin.engine` replaces its loaders with weights-only ones
  when the package is imported.

Layouts met in the wild: ``{'model': sd}`` (the Swin and MPViT classification releases of
microsoft/Swin-Transformer and youngwanLEE/MPViT), ``{'state_dict': sd, 'state_dict_ema': sd}``
(microsoft/CSWin-Transformer, timm's saver), a flat dict (microsoft/CvT, timm, safetensors
files), and mmseg / mmdet / mmengine whole-model checkpoints
``{'state_dict': {'backbone.…': …}}``; a ``module.`` prefix (DataParallel) also occurs.

This module imports neither the models nor mmcv: the engine and the models both build on it.
"""
import contextlib
import hashlib
import http.client
import io
import os
import os.path as osp
import pickle
import re
import secrets
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch

StateDict = Dict[str, torch.Tensor]
PathLike = Union[str, os.PathLike]

#: Where each layout keeps its weights, in the order the official loaders try them.
WRAPPER_KEYS = ('state_dict', 'state_dict_ema', 'model')
#: Seconds without an answer before a download gives up.
DOWNLOAD_TIMEOUT_S = 60
_URL = re.compile(r'^https?://', re.IGNORECASE)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: missing, unreachable, truncated, unsafe or of another model."""


def is_url(uri: PathLike) -> bool:
    return bool(_URL.match(os.fspath(uri)))


def is_uri(uri: PathLike) -> bool:
    """Whether ``uri`` is read through a scheme rather than as a local path.

    True for URLs and for whatever mmengine's ``CheckpointLoader`` has a scheme for
    (``open-mmlab://``, ``s3://``, ``cluster:s3://``, …, and schemes registered later), matched as
    it matches them, so that no URI it can load is taken for a missing local file.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    uri = os.fspath(uri)
    return is_url(uri) or any(prefix and re.match(prefix, uri)  # '' (local paths) matches all
                              for prefix in CheckpointLoader._schemes)


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


#: Globals that :func:`_torch_load` accepts beyond torch's own (see :func:`allow_globals`).
_ALLOWED_GLOBALS: List[Any] = []
_allowlist_lock = threading.Lock()
_allowlist_users = 0
_allowlist_added: List[Any] = []


def allow_globals(globals_: Sequence[Any]) -> None:
    """Let this module's weights-only loads accept ``globals_`` too (e.g. mmengine's
    ``HistoryBuffer``); torch's own allowlist, which every ``torch.load`` in the process uses,
    is widened only while one of these loads runs."""
    _ALLOWED_GLOBALS.extend(g for g in globals_ if g not in _ALLOWED_GLOBALS)


@contextlib.contextmanager
def _allowlist_widened() -> Iterator[None]:
    """torch's weights-only allowlist plus :data:`_ALLOWED_GLOBALS`, for the duration.

    Like ``torch.serialization.safe_globals``, but the allowlist is one set for the whole process:
    concurrent loads share one widening (made by the first, undone by the last), and globals the
    user allowed themselves stay allowed afterwards.
    """
    global _allowlist_users, _allowlist_added
    with _allowlist_lock:
        if _allowlist_users == 0:
            present = torch.serialization.get_safe_globals()
            _allowlist_added = [g for g in _ALLOWED_GLOBALS if g not in present]
            torch.serialization.add_safe_globals(_allowlist_added)
        _allowlist_users += 1
    try:
        yield
    finally:
        with _allowlist_lock:
            _allowlist_users -= 1
            if _allowlist_users == 0:
                # torch >= 2.4 has no public call removing some globals: set the rest again
                kept = [g for g in torch.serialization.get_safe_globals()
                        if g not in _allowlist_added]
                torch.serialization.clear_safe_globals()
                torch.serialization.add_safe_globals(kept)


def _torch_load(file: Union[str, io.BytesIO], map_location: Any, name: str) -> Any:
    try:
        with _allowlist_widened():
            return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if 'Weights only load failed' in str(err):
            # the line naming the refused global; its wording differs across torch versions
            reason = next((line.strip() for line in str(err).splitlines()
                           if 'WeightsUnpickler error' in line or 'GLOBAL' in line), '')
            raise CheckpointError(
                f'checkpoint {name} holds Python objects that weights-only loading refuses, so it '
                'was not loaded (unpickling it could run code). Load it only if you trust it, and '
                'save its tensors as a plain dict of tensors or as safetensors'
                + (f' ({reason})' if reason else '')) from err
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
#: torch.hub's names that carry the start of their file's sha256 (``resnet50-0676ba61.pth``); as
#: torch's docs say, eight or more hex digits, so ``cvt-13.pth`` is no hash.
_HASH_IN_NAME = re.compile(r'-([a-f0-9]{8,64})\.')


def checkpoint_cache_dir() -> str:
    """Where downloads go: ``<torch hub dir>/checkpoints``, shared with torch and mmengine."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def download_checkpoint(url: str, progress: Optional[bool] = None) -> str:
    """The local path of ``url`` in the hub cache, downloading it first if needed.

    A file whose name carries its sha256 prefix (torch.hub's ``name-<sha256 prefix>.ext``) is
    kept as ``<cache>/<name>``, where torch and mmengine keep it too: its content is checked
    against its name, so it can be shared. Any other file goes to ``<cache>/<hash of the
    URL>/<name>`` with its sha256 beside it (``<name>.sha256``, as ``sha256sum`` writes it), so two
    URLs never share a file. A cached file that fails its check (truncated, corrupted) is
    downloaded again.

    In a distributed run rank 0 downloads while the others wait; then every rank learns whether it
    succeeded, so that a failed download stops every rank with rank 0's error instead of leaving
    them waiting. The other ranks then use rank 0's file (or download it themselves where the
    cache is not shared).
    """
    from mmengine.dist import broadcast_object_list, get_dist_info
    rank, world_size = get_dist_info()
    if world_size == 1:
        return _download(url, progress)
    error: Optional[Exception] = None
    if rank == 0:
        try:
            path = _download(url, progress)
        except Exception as err:  # noqa: BLE001  (every rank is told below, then it is raised)
            error = err
    status: List[Optional[str]] = [None if error is None else _describe(error)]
    broadcast_object_list(status, src=0)
    if error is not None:
        raise error
    if status[0] is not None:
        raise CheckpointError(f'rank 0 could not download the checkpoint, so rank {rank} stops '
                              f'too: {status[0]}')
    return path if rank == 0 else _download(url, progress)


def _describe(err: Exception) -> str:
    return str(err) if isinstance(err, CheckpointError) else f'{type(err).__name__}: {err}'


def _cache_path(url: str) -> Tuple[str, Optional[str]]:
    """Where ``url`` is cached, and the sha256 prefix its name promises (None if none)."""
    name = osp.basename(urllib.parse.urlparse(url).path) or 'checkpoint'
    match = _HASH_IN_NAME.search(name)
    if match:
        return osp.join(checkpoint_cache_dir(), name), match.group(1)
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return osp.join(checkpoint_cache_dir(), key, name), None


def _cached(path: str, hash_prefix: Optional[str]) -> bool:
    """Whether ``path`` is a whole download: its sha256 is the one its name or record gives."""
    if not osp.isfile(path):
        return False
    expected = hash_prefix
    if expected is None:
        try:
            with open(path + '.sha256') as f:
                expected = f.read().split(maxsplit=1)[0]
        except (OSError, IndexError):  # no record: the download never completed
            return False
    actual = _sha256(path)
    if actual.startswith(expected) if hash_prefix else actual == expected:
        return True
    sys.stderr.write(f'{path} is incomplete or corrupted (sha256 {actual}, expected {expected}); '
                     'downloading it again\n')
    return False


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, progress: Optional[bool]) -> str:
    path, hash_prefix = _cache_path(url)
    if _cached(path, hash_prefix):
        return path
    if progress is None:
        progress = sys.stderr.isatty()
    sys.stderr.write(f'Downloading {url} to {path}\n')
    try:
        request = urllib.request.Request(url, headers={'User-Agent': 'mmvit_plugin'})
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, \
                atomic_write(path) as out:
            total = int(response.headers.get('Content-Length') or 0) or None
            sha256 = _copy_with_progress(response, out, total, progress)
            if total is not None and out.tell() != total:
                raise CheckpointError(f'the download of {url} stopped after {out.tell()} of '
                                      f'{total} bytes; run again to retry')
            if hash_prefix is not None and not sha256.startswith(hash_prefix):
                raise CheckpointError(
                    f'the download of {url} is not the file its name promises: its name says its '
                    f'sha256 starts with {hash_prefix} (torch.hub\'s name-<sha256 prefix> '
                    f'convention), but its sha256 is {sha256}. Nothing was cached; check the URL, '
                    'or download the file yourself and point the config at it')
        if hash_prefix is None:
            with atomic_write(path + '.sha256') as record:
                record.write(f'{sha256}  {osp.basename(path)}\n'.encode())
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        # HTTPError's str() has the status code; URLError's reason says what failed to connect
        reason = err if isinstance(err, urllib.error.HTTPError) else getattr(err, 'reason', err)
        name = osp.basename(path)
        raise CheckpointError(
            f'could not download the checkpoint {url} ({reason}). Without network access, '
            f'download it on another machine, copy it here and point the config at the file, '
            f"e.g. --cfg-options model.backbone.init_cfg.checkpoint=/path/to/{name} "
            f'(backbone weights) or load_from=/path/to/{name} (a whole model)'
        ) from err
    return path


def _copy_with_progress(src: Any, dst: Any, total: Optional[int], progress: bool) -> str:
    """Copy ``src`` to ``dst`` in chunks; the sha256 of what was copied."""
    digest = hashlib.sha256()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit='B', unit_scale=True, unit_divisor=1024, file=sys.stderr)
    try:
        for chunk in iter(lambda: src.read(1 << 20), b''):
            dst.write(chunk)
            digest.update(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` only once written whole and flushed to disk.

    ``path`` is never half-written: a failure mid-write leaves the previous file as it was and
    removes the temporary (a kill can leave only the hidden ``.<name>.<random>.tmp``). The file gets
    what ``open(path, 'wb')`` would give it: 0666 less the umask, applied by the kernel
    (``tempfile.mkstemp`` would make it 0600, and reading the umask means setting it, which is not
    thread-safe).
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = osp.join(directory, f'.{osp.basename(path)}.{secrets.token_hex(8)}.tmp')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0), 0o666)
    try:
        with os.fdopen(fd, 'wb') as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
