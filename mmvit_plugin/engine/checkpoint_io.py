"""mmengine checkpoints under torch >= 2.6: weights-only loading on every path, clear errors,
atomic checkpoint saves.

torch >= 2.6 loads with ``weights_only=True``. mmengine 0.10.7's runner checkpoints then fail to
load, because its message hub pickles ``HistoryBuffer`` objects holding numpy arrays and bound
statistics methods (``getattr`` in the pickle). Rather than falling back to unsafe loading we:

- pickle ``HistoryBuffer`` without the methods (the built-in ones are restored on load; custom
  ones are registered by the code that defines them) and allow it and plain numpy arrays/scalars
  in our own weights-only loads only (:func:`mmvit_plugin.checkpoint.allow_globals`): a plain
  ``torch.load`` elsewhere in the process keeps torch's allowlist;
- load local files through :func:`mmvit_plugin.checkpoint.read_checkpoint`, whose errors
  name the file and say whether it is missing, truncated or corrupted;
- make mmengine's ``save_checkpoint`` (what the Runner, its ``CheckpointHook`` and the strategies
  save through) write local files atomically (temporary file, fsync, rename), so a run killed
  mid-save never leaves a half-written checkpoint behind; the file gets the permissions the umask
  gives, as a plain write would (shared work dirs stay readable). Every other file mmengine
  writes, ``last_checkpoint`` included, goes through mmengine's own ``LocalBackend`` as before.

Everything here is applied once, when ``mmvit_plugin`` is imported.
"""
import os
import os.path as osp
import tempfile
from typing import Any, Dict, Optional, Union

import numpy as np
from mmengine.fileio import BaseStorageBackend, LocalBackend, get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from ..checkpoint import (CheckpointError, allow_globals, atomic_write, read_checkpoint_bytes,
                          read_local_checkpoint, read_url_checkpoint)

_BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getstate(self: HistoryBuffer) -> Dict[str, Any]:
    state = self.__dict__.copy()
    state.pop('statistics_methods', None)
    return state


def _history_buffer_setstate(self: HistoryBuffer, state: Dict[str, Any]) -> None:
    state = dict(state)
    methods = state.pop('statistics_methods', {}) or {}
    for name in _BUILTIN_STATISTICS:
        HistoryBuffer._statistics_methods.setdefault(name, getattr(HistoryBuffer, name))
    for name, method in methods.items():  # files written by unpatched mmengine, loaded unsafely
        HistoryBuffer._statistics_methods.setdefault(name, method)
    self.__dict__.update(state)


def _numpy_safe_globals() -> list:
    core = getattr(np, '_core', None) or np.core
    # bytes: numpy pickles empty arrays' data as a bytes object.
    return [bytes, np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar,
            *{type(np.dtype(t)) for t in ('f2', 'f4', 'f8', 'i1', 'i2', 'i4', 'i8', 'u1', '?')}]


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader for local paths, with weights-only loading and clear errors."""
    return read_local_checkpoint(osp.expanduser(filename), map_location)


def load_http_checkpoint(filename: str, map_location: Any = None, **_: Any) -> Any:
    """``http(s)://``: downloaded once into torch's hub cache, then read weights-only."""
    return read_url_checkpoint(filename, map_location)


def load_openmmlab_checkpoint(filename: str, map_location: Any = None) -> Any:
    """``open-mmlab://NAME`` / ``openmmlab://NAME``: mmengine's name table, then the URL or the
    file under mmengine's home."""
    name = filename.split('://', 1)[1]
    name = mm_checkpoint.get_deprecated_model_names().get(name, name)
    url = _model_url(mm_checkpoint.get_external_models(), name, filename)
    if url.startswith(('http://', 'https://')):
        return load_http_checkpoint(url, map_location)
    return read_local_checkpoint(osp.join(mm_checkpoint._get_mmengine_home(), url), map_location,
                                 source=filename)


def load_torchvision_checkpoint(filename: str, map_location: Any = None) -> Any:
    """``torchvision://NAME`` (and the deprecated ``modelzoo://NAME``)."""
    url = _model_url(mm_checkpoint.get_torchvision_models(), filename.split('://', 1)[1], filename)
    return load_http_checkpoint(url, map_location)


def load_mmcls_checkpoint(filename: str, map_location: Any = None) -> Any:
    """``mmcls://NAME``: mmcls's model zoo, keys moved as mmengine moves them."""
    url = _model_url(mm_checkpoint.get_mmcls_models(), filename.split('://', 1)[1], filename)
    return mm_checkpoint._process_mmcls_checkpoint(load_http_checkpoint(url, map_location))


def load_ceph_checkpoint(filename: str, map_location: Any = None, backend: str = 'petrel') -> Any:
    """``s3://`` / ``petrel://`` (mmengine's petrel backend): the bytes, read weights-only."""
    data = get_file_backend(filename, backend_args={'backend': backend}).get(filename)
    return read_checkpoint_bytes(data, map_location, source=filename)


def load_pavi_checkpoint(filename: str, map_location: Any = None) -> Any:
    """``pavi://``: downloaded with pavi's model cloud, then read weights-only."""
    try:
        from pavi import modelcloud
    except ImportError as err:
        raise CheckpointError(f'{filename}: the pavi:// scheme needs the pavi package') from err
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, model.name)
        model.download(path)
        return read_local_checkpoint(path, map_location, source=filename)


def _model_url(table: Dict[str, str], name: str, uri: str) -> str:
    if name not in table:
        raise CheckpointError(f'{uri}: mmengine knows no model named {name!r} '
                              f'(e.g. {sorted(table)[:5]})')
    return table[name]


#: Each mmengine scheme's prefixes and our weights-only loader for it.
SAFE_LOADERS = (
    ('', load_local_checkpoint),
    (('http://', 'https://'), load_http_checkpoint),
    (('open-mmlab://', 'openmmlab://'), load_openmmlab_checkpoint),
    (('modelzoo://', 'torchvision://'), load_torchvision_checkpoint),
    ('mmcls://', load_mmcls_checkpoint),
    ((r'(\S+\:)?s3://', r'(\S+\:)?petrel://'), load_ceph_checkpoint),
    ('pavi://', load_pavi_checkpoint),
)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, writing through a temporary file and an atomic rename."""

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        with atomic_write(os.fspath(filepath)) as f:
            f.write(obj)

    def put_text(self, obj: str, filepath: Union[str, os.PathLike], encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


def checkpoint_file_backend(uri: Union[str, os.PathLike, None] = None, *,
                            backend_args: Optional[dict] = None,
                            enable_singleton: bool = False) -> BaseStorageBackend:
    """``get_file_backend`` as ``mmengine.runner.checkpoint`` sees it: the same backend, except
    that mmengine's plain local one becomes :class:`AtomicLocalBackend`.

    Installed in that module only, so its ``save_checkpoint`` writes atomically whoever calls it
    and however they imported it, while the rest of mmengine keeps its own backend.
    """
    backend = get_file_backend(uri, backend_args=backend_args, enable_singleton=enable_singleton)
    return AtomicLocalBackend() if type(backend) is LocalBackend else backend


def install() -> None:
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    HistoryBuffer.__setstate__ = _history_buffer_setstate
    allow_globals([HistoryBuffer, *_numpy_safe_globals()])
    for prefixes, loader in SAFE_LOADERS:
        CheckpointLoader.register_scheme(prefixes=prefixes, loader=loader, force=True)
    # mmengine's own scheme loaders and callers that import it by name reach ours too.
    mm_checkpoint.load_from_http = load_http_checkpoint
    mm_checkpoint.load_from_local = load_local_checkpoint
    mm_checkpoint.get_file_backend = checkpoint_file_backend
