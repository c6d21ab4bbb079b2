import pytest
import torch

from mmvit_plugin.models.checkpoint import (CheckpointError, load_backbone_state_dict,
                                            read_checkpoint, strip_prefix, unwrap_state_dict)

W = {'a.weight': torch.ones(2), 'b.bias': torch.zeros(3)}


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
