"""CvT weights from Hugging Face transformers (the ``microsoft/cvt-*`` hub layout): CvtModel and
CvtForImageClassification, built small, randomised, saved, loaded three ways, compared.

transformers' CvT uses the exact GELU in its MLPs where the official CvT (and ours) uses QuickGELU,
so the same weights give other features there (about 1e-2 relative). The hub weights were converted
from the official files, so ours computes what they were trained with; the comparison swaps
QuickGELU into the transformers module to check the key mapping exactly."""
import warnings

import pytest
import torch

from backbone_checks import rel_err
from checkpoint_layouts import (assert_same_features, features, load_three_ways, official_names,
                                randomize)
from mmvit_plugin.models.backbones.conversion import (CVT_HF_CLASSIFIER as HF_CLASSIFIER,
                                                     CVT_HF_MODEL as HF_MODEL,
                                                     CVT_OFFICIAL as OFFICIAL, CVT_OURS as OURS)
from mmvit_plugin.models.backbones.cvt import CvT, convert_cvt_checkpoint, cvt_checkpoint_layout
from mmvit_plugin.models.layers import QuickGELU

ARCH = dict(embed_dims=(16, 32, 48, 48), num_heads=(1, 2, 3, 3), depths=(1, 2, 3, 1))
ODD_SIZES = [(97, 131), (333, 517)]


def build(**kwargs):
    return CvT(ARCH, drop_path_rate=0., **kwargs)


def hf_cvt(cls_name):
    import transformers
    # depths >= stage index + 1: transformers indexes its drop-path list by the stage number
    config = transformers.CvtConfig(depth=[1, 2, 3], embed_dim=[16, 32, 48], num_heads=[1, 2, 3],
                                    num_labels=10)
    return randomize(getattr(transformers, cls_name)(config))


def hf_features(model, x):
    body = getattr(model, 'cvt', model)
    with torch.no_grad():
        return body(x, output_hidden_states=True).hidden_states


def use_quick_gelu(model):
    for module in model.modules():
        if type(module).__name__ == 'CvtIntermediate':
            module.activation = QuickGELU()


@pytest.fixture(autouse=True)
def quiet_and_seeded():
    torch.manual_seed(0)  # the inputs
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        yield


@pytest.mark.parametrize('cls_name', ['CvtForImageClassification', 'CvtModel'])
def test_hugging_face_cvt(tmp_path, cls_name):
    theirs = hf_cvt(cls_name)
    if cls_name == 'CvtForImageClassification':
        theirs.save_pretrained(tmp_path / 'hub')  # model.safetensors, as on the hub
        path = tmp_path / 'hub' / 'model.safetensors'
    else:
        path = tmp_path / 'cvt.pth'
        torch.save(theirs.state_dict(), path)
    assert cvt_checkpoint_layout(theirs.state_dict()) == (
        HF_CLASSIFIER if cls_name == 'CvtForImageClassification' else HF_MODEL)
    ours = load_three_ways(build, path, 'cvt', tmp_path, repr(ARCH))
    missing, unexpected = build().load_state_dict(convert_cvt_checkpoint(theirs.state_dict()),
                                                  strict=False)
    assert all(k.startswith('stages.3.') for k in missing)  # our stride-32 stage only
    assert all(k.startswith(('norm.', 'head.')) for k in unexpected)
    x = torch.randn(1, 3, *ODD_SIZES[0])
    gelu_error = max(rel_err(a, b) for a, b in zip(features(ours, x)[:3], hf_features(theirs, x)))
    assert gelu_error > 1e-3  # exact GELU vs QuickGELU: see the module docstring
    use_quick_gelu(theirs)
    for size in ODD_SIZES:
        x = torch.randn(1, 3, *size)
        assert_same_features(features(ours, x)[:3], hf_features(theirs, x), f'{cls_name} {size}')


def test_official_layout_is_renamed_and_conversion_is_idempotent():
    own = build().state_dict()
    assert cvt_checkpoint_layout(own) == OURS
    assert convert_cvt_checkpoint(own).keys() == own.keys()
    official = official_names(own, 'cvt')  # also what release 0.1 of ours wrote
    assert cvt_checkpoint_layout(official) == OFFICIAL
    assert list(convert_cvt_checkpoint(official)) == list(own)
    once = convert_cvt_checkpoint(hf_cvt('CvtModel').state_dict())
    assert cvt_checkpoint_layout(once) == OURS
    assert convert_cvt_checkpoint(once).keys() == once.keys()
