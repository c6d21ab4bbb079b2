"""mmengine checkpoints under torch >= 2.6: weights-only loading, clear errors, atomic writes.

torch >= 2.6 loads with ``weights_only=True``. mmengine 0.10.7's runner checkpoints then fail to
load, because its message hub pickles ``HistoryBuffer`` objects holding numpy arrays and bound
statistics methods (``getattr`` in the pickle). Rather than falling back to unsafe loading we:

- pickle ``HistoryBuffer`` without the methods (the built-in ones are restored on load; custom
  ones are registered by the code that defines them) and allow it and plain numpy arrays/scalars
  as weights-only globals;
- load local files through :func:`mmvit_plugin.models.checkpoint.read_checkpoint`, whose errors
  name the file and say whether it is missing, truncated or corrupted;
- write local files atomically (temporary file, fsync, rename), so a run killed mid-save never
  leaves a half-written checkpoint or ``last_checkpoint`` pointer behind.

Everything here is applied once, when ``mmvit_plugin`` is imported.
"""
import os
import os.path as osp
import tempfile
from typing import Any, Dict, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from ..models.checkpoint import read_checkpoint

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
    return read_checkpoint(osp.expanduser(filename), map_location=map_location)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, writing through a temporary file and an atomic rename."""

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        self._atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, os.PathLike], encoding: str = 'utf-8') -> None:
        self._atomic_write(obj.encode(encoding), filepath)

    @staticmethod
    def _atomic_write(data: bytes, filepath: Union[str, os.PathLike]) -> None:
        filepath = os.fspath(filepath)
        directory = osp.dirname(osp.abspath(filepath))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f'.{osp.basename(filepath)}.', suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.unlink(tmp)
            raise


def install() -> None:
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    HistoryBuffer.__setstate__ = _history_buffer_setstate
    torch.serialization.add_safe_globals([HistoryBuffer, *_numpy_safe_globals()])
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_local_checkpoint)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
