"""PyramidBackbone's loading of Pretrained weights: what fits loads, what mostly does not is an error."""
import logging
import re

import pytest
import torch

from checkpoint_layouts import official_names
from mmvit_plugin.checkpoint import CheckpointError
from mmvit_plugin.models import CSWin, Swin

TINY_SWIN = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
TINY_CSWIN = dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 4))


def classification_release(model):
    """What an official classification file holds: the backbone minus its dense output norms,
    plus the classifier's norm and head and the derived buffers."""
    sd = official_names({k: v.clone() for k, v in model.state_dict().items() if '.out_norm.' not in k},
                        'swin')
    sd.update({'norm.weight': torch.ones(128), 'norm.bias': torch.zeros(128),
               'head.weight': torch.zeros(1000, 128), 'head.bias': torch.zeros(1000),
               'layers.0.blocks.1.attn_mask': torch.zeros(4, 49, 49)})
    return sd


def test_a_file_that_mostly_does_not_fit_is_an_error(tmp_path):
    source = Swin(arch=TINY_SWIN)
    partial = {k: v for k, v in source.state_dict().items() if k.startswith('patch_embed.')}
    partial.update({f'trunk.{j}.mixer.weight': torch.zeros(48, 16) for j in range(2)})
    torch.save({'state_dict': partial}, tmp_path / 'partial.pth')
    model = Swin(arch=TINY_SWIN, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'partial.pth')))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        model.init_weights()
    message = str(err.value)
    total = len(model.state_dict())
    assert f'only 4 of its {total} tensors' in message
    assert 'layout) does not fit this Swin' in message  # the layout the file looks like
    assert re.search(r'stages\.\*\.blocks\.\*\.[\w.]+ \(8\)', message)  # missing families, counted
    assert 'trunk.*.mixer.weight (2)' in message  # an unexpected family
    assert 'same arch' in message  # what to do
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing loaded


def test_another_backbones_weights_are_an_error(tmp_path):
    torch.save({'state_dict': CSWin(arch=TINY_CSWIN).state_dict()}, tmp_path / 'cswin.pth')
    model = Swin(arch=TINY_SWIN, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'cswin.pth')))
    # The four backbones share the stage names (stages.*.blocks.*.norm1, mlp, ...), so some fit.
    with pytest.raises(CheckpointError, match=r'\(unknown layout\) does not fit this Swin: only \d+ of '
                       r'its \d+ tensors.*patch_embed: 1 tensor of wrong shape'):
        model.init_weights()


def test_the_expected_leftovers_load_with_warnings(tmp_path, log_records):
    torch.manual_seed(0)
    source = Swin(arch=TINY_SWIN)
    for p in source.parameters():
        p.data.normal_()
    torch.save({'model': classification_release(source)}, tmp_path / 'cls.pth')
    model = Swin(arch=TINY_SWIN, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'cls.pth')))
    missing, unexpected = model.load_pretrained(str(tmp_path / 'cls.pth'))
    assert sorted(missing) == [f'stages.{i}.out_norm.{p}' for i in range(4) for p in ('bias', 'weight')]
    assert sorted(unexpected) == ['head.bias', 'head.weight', 'norm.bias', 'norm.weight']
    for k, v in source.state_dict().items():
        if '.out_norm.' not in k:
            assert torch.equal(model.state_dict()[k], v), k
    warnings = [r.getMessage() for r in log_records if r.levelno == logging.WARNING]
    assert any('missing keys' in w and 'stages.0.out_norm.weight' in w for w in warnings)
    assert any('unexpected keys' in w and 'head.weight' in w for w in warnings)


def test_checkpoint_none_trains_from_scratch_and_says_so(log_records):
    torch.manual_seed(0)
    model = Swin(arch=TINY_SWIN, init_cfg=dict(type='Pretrained', checkpoint=None))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.init_weights()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert any('training from scratch' in r.getMessage() and r.levelno == logging.WARNING
               for r in log_records)
