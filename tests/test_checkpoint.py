import hashlib
import os
import shutil

import pytest
import torch
from safetensors.torch import save_file

from checkpoint_files import save_code_running_pickle
from mmvit_plugin.checkpoint import (CheckpointError, is_uri, load_backbone_state_dict,
                                     read_checkpoint, strip_prefix, unwrap_state_dict)
from mmvit_plugin.models import Swin

W = {'a.weight': torch.ones(2), 'b.bias': torch.zeros(3)}
TINY_SWIN = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))


@pytest.mark.parametrize('wrapped', [
    {'state_dict': W, 'optimizer': {}},
    {'state_dict_ema': W, 'epoch': 3},
    {'model': W},
    W,
])
def test_unwrap_layouts(wrapped):
    assert unwrap_state_dict(wrapped).keys() == W.keys()


def test_unwrap_prefers_state_dict_then_ema():
    ema = {'a.weight': torch.full((2, ), 5.)}
    out = unwrap_state_dict({'state_dict': W, 'state_dict_ema': ema})
    assert out['a.weight'].sum() == 2


def test_unwrap_rejects_what_holds_no_weights():
    with pytest.raises(CheckpointError, match='no state dict'):
        unwrap_state_dict({'meta': {'epoch': 1}})
    with pytest.raises(CheckpointError, match='not a dict'):
        unwrap_state_dict([torch.ones(1)])


def test_strip_prefixes():
    sd = {'module.backbone.x': torch.ones(1), 'module.decode_head.y': torch.ones(1)}
    assert list(strip_prefix(sd)) == ['x']
    assert list(strip_prefix({'module.x': torch.ones(1)})) == ['x']
    assert sorted(strip_prefix(sd, prefix=None)) == ['backbone.x', 'decode_head.y']


def test_read_errors(tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        read_checkpoint(tmp_path / 'none.pth')
    (tmp_path / 'empty.pth').write_bytes(b'')
    with pytest.raises(CheckpointError, match='empty'):
        read_checkpoint(tmp_path / 'empty.pth')
    (tmp_path / 'junk.pth').write_bytes(b'this is not a checkpoint at all')
    with pytest.raises(CheckpointError, match='corrupted'):
        read_checkpoint(tmp_path / 'junk.pth')


def test_load_backbone_state_dict(tmp_path):
    path = tmp_path / 'seg.pth'
    torch.save({'state_dict': {'backbone.a.weight': torch.ones(2), 'decode_head.w': torch.ones(1)},
                'meta': {}}, path)
    assert list(load_backbone_state_dict(str(path))) == ['a.weight']


def test_is_uri():
    assert is_uri('https://x/y.pth') and is_uri('s3://b/k') and is_uri('open-mmlab://resnet50')
    assert not is_uri('/tmp/x.pth') and not is_uri('work_dirs/x.pth') and not is_uri('C:x')


@pytest.mark.parametrize('uri', ['cluster:s3://bucket/x.pth', 'cluster-1:petrel://bucket/x.pth',
                                 'modelzoo://resnet50', 'pavi://project/x.pth', 'HTTPS://x/y.pth'])
def test_every_uri_mmengine_loads_is_a_uri(uri):
    assert is_uri(uri)


def test_a_scheme_registered_later_is_a_uri_and_an_unknown_one_is_a_path(monkeypatch):
    from mmengine.runner.checkpoint import CheckpointLoader
    assert not is_uri('mystore://bucket/x.pth')  # mmengine would read it as a local path too
    monkeypatch.setattr(CheckpointLoader, '_schemes', dict(CheckpointLoader._schemes))
    CheckpointLoader.register_scheme('mystore://', loader=lambda uri, map_location: W)
    assert is_uri('mystore://bucket/x.pth')
    assert read_checkpoint('mystore://bucket/x.pth') is W


def test_cluster_s3_reaches_the_petrel_backend(tmp_path, monkeypatch):
    """``cluster:s3://`` goes to mmengine's petrel backend, weights-only; not to a local path."""
    from mmengine.fileio import PetrelBackend
    torch.save({'state_dict': W}, tmp_path / 'x.pth')
    asked = []

    def get(self, filepath):
        asked.append(filepath)
        return (tmp_path / 'x.pth').read_bytes()

    monkeypatch.setattr(PetrelBackend, '__init__', lambda self, **kwargs: None)  # no petrel_client
    monkeypatch.setattr(PetrelBackend, 'get', get)
    assert load_backbone_state_dict('cluster:s3://bucket/x.pth').keys() == W.keys()
    assert asked == ['cluster:s3://bucket/x.pth']


def test_a_file_saved_on_cuda_is_not_called_truncated(tmp_path, monkeypatch):
    """A whole file that cannot be loaded here says what failed, not 'truncated'."""
    path = tmp_path / 'cuda.pth'
    with monkeypatch.context() as m:  # record the storages as CUDA ones, as a GPU machine does
        m.setattr(torch.serialization, 'location_tag', lambda storage: 'cuda:0')
        torch.save({'w': torch.ones(3)}, path)
    if torch.cuda.is_available():
        pytest.skip('needs a machine without CUDA')
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path, map_location=None)
    assert 'could not be loaded' in str(err.value) and 'CUDA' in str(err.value)
    assert 'truncated' not in str(err.value)
    assert read_checkpoint(path, map_location='cpu')['w'].sum() == 3


# --- safetensors ---------------------------------------------------------------------------------
def test_safetensors_by_header_whatever_the_name(tmp_path):
    sd = {'a.weight': torch.randn(3, 4), 'b.bias': torch.arange(5.)}
    for name in ('model.safetensors', 'renamed.pth'):
        save_file(sd, tmp_path / name)
        out = read_checkpoint(tmp_path / name)
        assert out.keys() == sd.keys()
        for k in sd:
            assert torch.equal(out[k], sd[k])


def test_truncated_safetensors(tmp_path):
    save_file({'a': torch.randn(100)}, tmp_path / 'full.safetensors')
    data = (tmp_path / 'full.safetensors').read_bytes()
    (tmp_path / 'cut.safetensors').write_bytes(data[:len(data) - 40])
    with pytest.raises(CheckpointError, match='truncated or corrupted safetensors'):
        read_checkpoint(tmp_path / 'cut.safetensors')


# --- URLs ----------------------------------------------------------------------------------------
def swin_features(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


def test_url_loads_once_into_the_hub_cache_and_matches_the_local_file(tmp_path, loopback_server,
                                                                        hub_dir):
    torch.manual_seed(0)
    source = Swin(arch=TINY_SWIN)
    for p in source.parameters():
        p.data.normal_()
    served = loopback_server.root / 'swin_tiny_test.pth'
    torch.save({'model': source.state_dict()}, served)

    x = torch.randn(1, 3, 61, 83)
    from_disk = Swin(arch=TINY_SWIN, init_cfg=dict(type='Pretrained', checkpoint=str(served)))
    from_disk.init_weights()
    url = loopback_server.url('swin_tiny_test.pth')
    from_url = Swin(arch=TINY_SWIN, init_cfg=dict(type='Pretrained', checkpoint=url))
    from_url.init_weights()
    for a, b, ref in zip(swin_features(from_url, x), swin_features(from_disk, x),
                         swin_features(source, x)):
        assert torch.equal(a, b) and torch.equal(a, ref)
    cached = cached_file(hub_dir, 'swin_tiny_test.pth')
    assert cached.read_bytes() == served.read_bytes()
    assert loopback_server.requests == 1
    read_checkpoint(url)  # from the cache: no second request
    assert loopback_server.requests == 1
    assert not [f for f in os.listdir(cached.parent) if f.startswith('.')]  # no temporaries left


def cached_file(hub_dir, name):
    """The one file called ``name`` in the download cache."""
    found = list((hub_dir / 'checkpoints').rglob(name))
    assert len(found) == 1, found
    return found[0]


def test_same_file_name_from_another_url_does_not_reuse_the_cache(tmp_path, loopback_server, hub_dir):
    (loopback_server.root / 'a').mkdir()
    (loopback_server.root / 'b').mkdir()
    save_file({'w': torch.zeros(2)}, loopback_server.root / 'a' / 'model.safetensors')
    save_file({'w': torch.ones(2)}, loopback_server.root / 'b' / 'model.safetensors')
    assert read_checkpoint(loopback_server.url('a/model.safetensors'))['w'].sum() == 0
    assert read_checkpoint(loopback_server.url('b/model.safetensors'))['w'].sum() == 2
    assert read_checkpoint(loopback_server.url('a/model.safetensors'))['w'].sum() == 0
    assert loopback_server.requests == 2
    cached = sorted((hub_dir / 'checkpoints').rglob('model.safetensors'))
    assert len(cached) == 2
    assert sorted(p.read_bytes() for p in cached) == sorted(
        (loopback_server.root / d / 'model.safetensors').read_bytes() for d in 'ab')


def test_a_truncated_cached_file_is_downloaded_again(loopback_server, hub_dir):
    torch.save({'w': torch.arange(1000.)}, loopback_server.root / 'plain.pth')
    url = loopback_server.url('plain.pth')
    read_checkpoint(url)
    cached = cached_file(hub_dir, 'plain.pth')
    cached.write_bytes(cached.read_bytes()[:500])  # e.g. a copy that ran out of disk
    assert torch.equal(read_checkpoint(url)['w'], torch.arange(1000.))
    assert loopback_server.requests == 2
    assert cached.read_bytes() == (loopback_server.root / 'plain.pth').read_bytes()
    cached.with_name('plain.pth.sha256').unlink()  # no record of a completed download: fetched again
    read_checkpoint(url)
    assert loopback_server.requests == 3


def hash_named(folder, stem, obj):
    """Save ``obj`` as torch.hub names released files: ``<stem>-<first 8 hex of its sha256>.pth``."""
    tmp = folder / 'unnamed.pth'
    torch.save(obj, tmp)
    name = f'{stem}-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth'
    tmp.rename(folder / name)
    return name


def test_hash_named_files_are_checked_and_shared_with_torch_hub(loopback_server, hub_dir):
    name = hash_named(loopback_server.root, 'resnet', {'w': torch.arange(4.)})
    url = loopback_server.url(name)
    (hub_dir / 'checkpoints').mkdir(parents=True)
    shutil.copy(loopback_server.root / name, hub_dir / 'checkpoints' / name)  # as torch.hub left it
    assert torch.equal(read_checkpoint(url)['w'], torch.arange(4.))
    assert loopback_server.requests == 0
    # torch.hub's own loader finds what we download (same place, same name)
    (hub_dir / 'checkpoints' / name).write_bytes(b'corrupted')
    assert torch.equal(read_checkpoint(url)['w'], torch.arange(4.))
    assert loopback_server.requests == 1
    assert torch.equal(torch.hub.load_state_dict_from_url(url, check_hash=True)['w'], torch.arange(4.))
    assert loopback_server.requests == 1


def test_a_file_without_a_hash_in_its_name_left_by_torch_hub_is_not_reused(loopback_server, hub_dir):
    """Its name alone does not say which URL it came from."""
    torch.save({'w': torch.ones(2)}, loopback_server.root / 'model.pth')
    (hub_dir / 'checkpoints').mkdir(parents=True)
    torch.save({'w': torch.zeros(2)}, hub_dir / 'checkpoints' / 'model.pth')  # another URL's
    assert read_checkpoint(loopback_server.url('model.pth'))['w'].sum() == 2
    assert loopback_server.requests == 1
    assert torch.load(hub_dir / 'checkpoints' / 'model.pth')['w'].sum() == 0  # left alone


def test_a_file_whose_content_does_not_match_the_hash_in_its_name_is_refused(loopback_server,
                                                                            hub_dir):
    torch.save({'w': torch.ones(2)}, loopback_server.root / 'swin-0123abcd.pth')
    actual = hashlib.sha256((loopback_server.root / 'swin-0123abcd.pth').read_bytes()).hexdigest()
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(loopback_server.url('swin-0123abcd.pth'))
    message = str(err.value)
    assert 'starts with 0123abcd' in message and actual in message
    assert not (hub_dir / 'checkpoints').exists() or not os.listdir(hub_dir / 'checkpoints')


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_downloads_get_the_permissions_the_umask_gives(umask, loopback_server, hub_dir):
    torch.save({'w': torch.ones(2)}, loopback_server.root / 'model.pth')
    old = os.umask(umask)
    try:
        read_checkpoint(loopback_server.url('model.pth'))
    finally:
        os.umask(old)
    assert cached_file(hub_dir, 'model.pth').stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize('where', ['404', 'refused'])
def test_unreachable_url_names_it_and_says_how_to_use_a_local_file(where, loopback_server,
                                                                   refused_url, hub_dir):
    url = loopback_server.url('absent.pth') if where == '404' else refused_url
    model = Swin(arch=TINY_SWIN, init_cfg=dict(type='Pretrained', checkpoint=url))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        model.init_weights()
    message = str(err.value)
    assert url in message and 'model.backbone.init_cfg.checkpoint=' in message
    assert ('404' in message) if where == '404' else ('refused' in message.lower())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not (hub_dir / 'checkpoints').exists() or not os.listdir(hub_dir / 'checkpoints')


def test_code_running_pickle_over_http_is_refused_and_never_runs(tmp_path, loopback_server, hub_dir):
    marker = tmp_path / 'code_ran'
    save_code_running_pickle(loopback_server.root / 'evil.pth', marker)
    with pytest.raises(CheckpointError, match='weights-only'):
        read_checkpoint(loopback_server.url('evil.pth'))
    assert not marker.exists()
    # the payload is live: unsafe unpickling of the same file does run it
    torch.load(cached_file(hub_dir, 'evil.pth'), weights_only=False)
    assert marker.exists()
