"""Checkpoints written by earlier releases, in our own layout, keep loading exactly.

Two files recorded from the 0.x code are the reference (``tests/data``):

- ``backbone_state_dict_keys.json.gz``: ``{"Swin/tiny": {key: shape}, ...}``, the state dict of
  every backbone and arch;
- ``backbone_reference_outputs.pt.gz``: per family, a small arch's constructor kwargs, its fp16
  weights, a 1x3x61x83 input and the four feature maps it gave (fp32, eval mode).

Whatever the modules are called now, a state dict with the recorded keys and shapes fills every
tensor (the conversion hook maps old names onto new ones), and the recorded weights give the
recorded features.
"""
import gzip
import io
import json
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from mmvit_plugin.engine import load_weights
from mmvit_plugin.models.backbones import CSWin, CvT, MPViT, Swin

DATA = Path(__file__).resolve().parents[2] / 'data'
BACKBONES = {'Swin': Swin, 'CSWin': CSWin, 'CvT': CvT, 'MPViT': MPViT}
CONFIGS = Path(__file__).resolve().parents[3] / 'configs'


def recorded_keys() -> Dict[str, Dict[str, List[int]]]:
    with gzip.open(DATA / 'backbone_state_dict_keys.json.gz', 'rt') as f:
        return json.load(f)


def recorded_outputs() -> dict:
    with gzip.open(DATA / 'backbone_reference_outputs.pt.gz', 'rb') as f:
        return torch.load(io.BytesIO(f.read()), weights_only=True)


def placeholder_state(shapes: Dict[str, List[int]]) -> Dict[str, torch.Tensor]:
    """A state dict with these keys and shapes, on the meta device (for models built there)."""
    return {key: torch.empty(shape, device='meta') for key, shape in shapes.items()}


def assert_fills_everything(model: torch.nn.Module, state: Dict[str, torch.Tensor]) -> None:
    fit = load_weights(model, state, 'evaluate', source='recorded layout')
    assert not fit.missing and not fit.mismatched and not fit.unexpected, fit
    assert fit.filled == fit.total


@pytest.mark.parametrize('name', sorted(recorded_keys()))
def test_recorded_keys_load(name):
    family, arch = name.split('/')
    with torch.device('meta'):
        model = BACKBONES[family](arch=arch)
    assert_fills_everything(model, placeholder_state(recorded_keys()[name]))


def test_recorded_keys_load_into_whole_model():
    """The ``backbone.`` keys of a whole mmseg model written by an earlier release."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(str(CONFIGS / 'upernet_swin_t_ade20k.py'))
    cfg.model.backbone = dict(type='Swin', arch='tiny')
    init_default_scope('mmseg')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith('backbone.')}
    state.update({f'backbone.{k}': v
                  for k, v in placeholder_state(recorded_keys()['Swin/tiny']).items()})
    assert_fills_everything(model, state)


@pytest.mark.parametrize('family', sorted(BACKBONES))
def test_recorded_weights_give_recorded_outputs(family):
    record = recorded_outputs()[family]
    model = BACKBONES[family](**record['kwargs']).eval()
    state = {k: v.float() if v.is_floating_point() else v for k, v in record['state_dict'].items()}
    assert_fills_everything(model, state)
    with torch.no_grad():
        outputs = model(record['input'].float())
    assert len(outputs) == len(record['outputs'])
    for level, (got, want) in enumerate(zip(outputs, record['outputs'])):
        assert got.shape == want.shape, level
        err = (got - want).abs().max() / want.abs().max()
        assert err <= 1e-5, f'{family} level {level}: relative error {err:.2e}'
