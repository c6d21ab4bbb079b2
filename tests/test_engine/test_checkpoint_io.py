import os

import numpy as np
import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

import mmvit_plugin  # noqa: F401  (installs the checkpoint I/O fixes)
from mmvit_plugin.engine import AtomicLocalBackend
from mmvit_plugin.models.checkpoint import CheckpointError


def test_runner_checkpoint_round_trips_under_weights_only(tmp_path):
    hub = MessageHub.get_instance('test_ckpt_io')
    for loss in (3.0, 2.0, 1.0):
        hub.update_scalar('train/loss', loss)
    hub.update_info('iter', 3)
    checkpoint = {'meta': {'iter': 3, 'seed': np.int64(7), 'dataset_meta': {'classes': ('a', 'b')}},
                  'state_dict': {'w': torch.arange(4.)}, 'message_hub': hub.state_dict(),
                  'empty_buffer': HistoryBuffer()}
    path = tmp_path / 'iter_3.pth'
    save_checkpoint(checkpoint, str(path))
    loaded = _load_checkpoint(str(path), map_location='cpu')
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(2.0) and buffer.current() == 1.0
    assert loaded['meta']['seed'] == 7
    torch.testing.assert_close(loaded['state_dict']['w'], torch.arange(4.))
    # weights-only stays on: arbitrary objects are still refused, with a clear error.
    torch.save({'bad': os.getcwd, 'w': torch.ones(1)}, tmp_path / 'unsafe.pth')
    with pytest.raises(CheckpointError, match='weights-only'):
        _load_checkpoint(str(tmp_path / 'unsafe.pth'))


def test_truncated_and_missing_files_name_the_problem(tmp_path):
    path = tmp_path / 'full.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(1000)}}, str(path))
    (tmp_path / 'cut.pth').write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match='truncated or corrupted'):
        _load_checkpoint(str(tmp_path / 'cut.pth'))
    with pytest.raises(CheckpointError, match='not found'):
        _load_checkpoint(str(tmp_path / 'absent.pth'))


def test_local_writes_are_atomic(tmp_path, monkeypatch):
    backend = get_file_backend(str(tmp_path / 'x.pth'))
    assert isinstance(backend, AtomicLocalBackend)
    target = tmp_path / 'sub' / 'last_checkpoint'
    backend.put_text('first', target)
    assert target.read_text() == 'first'

    def failing_fsync(fd):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', failing_fsync)
    with pytest.raises(OSError, match='disk full'):
        backend.put(b'second, half written', target)
    assert target.read_text() == 'first'  # the old file is intact
    assert os.listdir(target.parent) == ['last_checkpoint']  # no temporary left behind
