import os

import pickle

import numpy as np
import pytest
import torch
from mmengine.fileio import LocalBackend, get_file_backend, put_text
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

import mmvit_plugin  # noqa: F401  (installs the checkpoint I/O fixes)
from checkpoint_files import save_code_running_pickle
from mmvit_plugin.checkpoint import CheckpointError
from mmvit_plugin.engine import AtomicLocalBackend


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
    assert torch.equal(loaded['state_dict']['w'], torch.arange(4.))
    # weights-only stays on: arbitrary objects are still refused, with a clear error.
    torch.save({'bad': os.getcwd, 'w': torch.ones(1)}, tmp_path / 'unsafe.pth')
    with pytest.raises(CheckpointError, match=r'weights-only.*\(.*getcwd'):
        _load_checkpoint(str(tmp_path / 'unsafe.pth'))


def test_truncated_and_missing_files_name_the_problem(tmp_path):
    path = tmp_path / 'full.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(1000)}}, str(path))
    (tmp_path / 'cut.pth').write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match='truncated or corrupted'):
        _load_checkpoint(str(tmp_path / 'cut.pth'))
    with pytest.raises(CheckpointError, match='not found'):
        _load_checkpoint(str(tmp_path / 'absent.pth'))


def test_allowlist_is_widened_only_for_our_loads(tmp_path):
    """The message hub's globals are allowed while our loader reads, not in the whole process."""
    allowed = set(map(id, torch.serialization.get_safe_globals()))
    assert id(HistoryBuffer) not in allowed and id(np.ndarray) not in allowed
    path = tmp_path / 'array.pth'
    torch.save({'a': np.arange(3)}, path)
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        torch.load(path, weights_only=True)
    assert (_load_checkpoint(str(path))['a'] == np.arange(3)).all()
    assert set(map(id, torch.serialization.get_safe_globals())) == allowed  # narrowed again
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        torch.load(path, weights_only=True)


def test_globals_the_user_allowed_stay_allowed(tmp_path):
    path = tmp_path / 'array.pth'
    torch.save({'a': np.arange(3)}, path)
    before = torch.serialization.get_safe_globals()
    core = getattr(np, '_core', None) or np.core
    torch.serialization.add_safe_globals([core.multiarray._reconstruct])
    try:
        _load_checkpoint(str(path))
        assert core.multiarray._reconstruct in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


def test_checkpoint_saves_are_atomic(tmp_path, monkeypatch):
    target = tmp_path / 'sub' / 'iter_1.pth'
    mm_checkpoint.save_checkpoint({'state_dict': {'w': torch.ones(1)}}, str(target))
    first = target.read_bytes()

    def failing_fsync(fd):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', failing_fsync)
    with pytest.raises(OSError, match='disk full'):
        mm_checkpoint.save_checkpoint({'state_dict': {'w': torch.zeros(100)}}, str(target))
    assert target.read_bytes() == first  # the old file is intact
    assert os.listdir(target.parent) == ['iter_1.pth']  # no temporary left behind


def test_only_checkpoint_saves_use_the_atomic_backend(tmp_path, monkeypatch):
    """mmengine's other writes keep its own LocalBackend; object stores keep theirs."""
    assert type(get_file_backend(str(tmp_path / 'x.txt'))) is LocalBackend
    assert type(mm_checkpoint.get_file_backend(str(tmp_path / 'x.pth'))) is AtomicLocalBackend
    assert type(mm_checkpoint.get_file_backend('http://host/x.pth')).__name__ == 'HTTPBackend'
    atomic_puts = []
    monkeypatch.setattr(AtomicLocalBackend, 'put',
                        lambda self, obj, filepath: atomic_puts.append(filepath))
    put_text('plain', str(tmp_path / 'notes.txt'))
    assert (tmp_path / 'notes.txt').read_text() == 'plain' and not atomic_puts
    save_checkpoint({'w': torch.ones(1)}, str(tmp_path / 'x.pth'))  # bound before the import too
    assert atomic_puts == [str(tmp_path / 'x.pth')]


def test_runner_saves_atomically_and_last_checkpoint_is_mmengines(tmp_path, monkeypatch):
    """A Runner's CheckpointHook: checkpoints through the atomic backend, with the umask's
    permissions; ``last_checkpoint`` written by mmengine itself, where and as it writes it."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.linear(inputs)
            return {'loss': out.pow(2).mean()} if mode == 'loss' else out

    saved = []
    put = AtomicLocalBackend.put
    monkeypatch.setattr(AtomicLocalBackend, 'put',
                        lambda self, obj, filepath: (saved.append(filepath), put(self, obj, filepath)))
    work_dir = tmp_path / 'work'
    old = os.umask(0o022)
    try:
        runner = Runner(
            model=Toy(), work_dir=str(work_dir), experiment_name=f'ckpt_io_{tmp_path.name}',
            train_dataloader=torch.utils.data.DataLoader([{'inputs': torch.ones(2)}] * 2,
                                                         batch_size=2),
            train_cfg=dict(by_epoch=False, max_iters=1),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
            default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)))
        runner.train()
    finally:
        os.umask(old)
    ckpt = work_dir / 'iter_1.pth'
    assert saved == [str(ckpt)]
    assert ckpt.stat().st_mode & 0o777 == 0o644
    assert (work_dir / 'last_checkpoint').read_text() == str(ckpt)
    assert _load_checkpoint(str(ckpt))['meta']['iter'] == 1


@pytest.mark.parametrize('umask', [0o022, 0o002, 0o077])
def test_atomic_writes_keep_the_permissions_the_umask_gives(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = tmp_path / f'ckpt_{umask:o}.pth'
        save_checkpoint({'state_dict': {'w': torch.ones(1)}}, str(path))
        (tmp_path / 'plain').write_bytes(b'x')  # what a plain write gets under this umask
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert path.stat().st_mode & 0o777 == (tmp_path / 'plain').stat().st_mode & 0o777


# --- every mmengine scheme loads weights-only ------------------------------------------------------
def _evil_and_good(server, tmp_path):
    marker = tmp_path / 'code_ran'
    save_code_running_pickle(server.root / 'evil.pth', marker)
    torch.save({'state_dict': {'w': torch.arange(3.)}}, server.root / 'good.pth')
    return marker


def _assert_refused_then_loaded(uri_of, marker):
    with pytest.raises(CheckpointError, match='weights-only'):
        _load_checkpoint(uri_of('evil.pth'), map_location='cpu')
    assert not marker.exists()
    assert torch.equal(_load_checkpoint(uri_of('good.pth'))['state_dict']['w'], torch.arange(3.))


def test_http_scheme_is_weights_only(tmp_path, loopback_server, hub_dir):
    marker = _evil_and_good(loopback_server, tmp_path)
    _assert_refused_then_loaded(loopback_server.url, marker)


@pytest.mark.parametrize('scheme, table', [
    ('open-mmlab://', 'get_external_models'),
    ('openmmlab://', 'get_external_models'),
    ('torchvision://', 'get_torchvision_models'),
    ('mmcls://', 'get_mmcls_models'),
])
def test_model_zoo_schemes_are_weights_only(scheme, table, tmp_path, loopback_server, hub_dir,
                                            monkeypatch):
    from mmengine.runner import checkpoint as mm_checkpoint
    marker = _evil_and_good(loopback_server, tmp_path)
    names = {'evil.pth': loopback_server.url('evil.pth'), 'good.pth': loopback_server.url('good.pth')}
    monkeypatch.setattr(mm_checkpoint, table, lambda: names)
    if scheme == 'mmcls://':  # mmcls files move their keys; ours has none to move
        monkeypatch.setattr(mm_checkpoint, '_process_mmcls_checkpoint', lambda ckpt: ckpt)
    _assert_refused_then_loaded(lambda name: scheme + name, marker)
    with pytest.raises(CheckpointError, match='knows no model'):
        _load_checkpoint(scheme + 'no_such_model')


def test_object_storage_schemes_are_weights_only(tmp_path, monkeypatch):
    import mmvit_plugin.engine.checkpoint_io as checkpoint_io
    marker = tmp_path / 'code_ran'
    save_code_running_pickle(tmp_path / 'evil.pth', marker)
    torch.save({'state_dict': {'w': torch.arange(3.)}}, tmp_path / 'good.pth')

    class FakeBucket:  # what mmengine's petrel backend returns: the object's bytes

        def get(self, uri):
            return (tmp_path / uri.rsplit('/', 1)[1]).read_bytes()

    monkeypatch.setattr(checkpoint_io, 'get_file_backend', lambda uri, backend_args: FakeBucket())
    for scheme in ('s3://bucket/', 'cluster:s3://bucket/', 'petrel://bucket/'):
        _assert_refused_then_loaded(lambda name: scheme + name, marker)


def test_runner_helpers_load_urls_weights_only(tmp_path, loopback_server, hub_dir):
    """mmengine's load_checkpoint (what load_from and resume use) on a URL."""
    from mmengine.runner import load_checkpoint
    marker = _evil_and_good(loopback_server, tmp_path)
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(CheckpointError, match='weights-only'):
        load_checkpoint(model, loopback_server.url('evil.pth'))
    assert not marker.exists()
    load_checkpoint(model, loopback_server.url('good.pth'))
    assert torch.equal(model.w.data, torch.arange(3.))
