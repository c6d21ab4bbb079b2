"""mmvit_plugin.models.families: the four families by name, and backbones from spec strings."""
import pytest

import mmvit_plugin.models.backbones as backbones
from mmvit_plugin.models.families import (FAMILIES, backbone_class, build_backbone,
                                          checkpoint_converter, checkpoint_layout, family_of,
                                          parse_spec)
from mmvit_plugin.models.layers import DropPath


def test_every_family_has_its_class_converter_and_layout():
    assert sorted(FAMILIES) == ['cswin', 'cvt', 'mpvit', 'swin']
    for family, name in FAMILIES.items():
        module = getattr(backbones, family)
        assert backbone_class(family) is backbone_class(name) is getattr(backbones, name)
        assert checkpoint_converter(family) is getattr(module, f'convert_{family}_checkpoint')
        assert checkpoint_layout(name) is getattr(module, f'{family}_checkpoint_layout')
        assert family_of(name) == family_of(family) == family


def test_specs():
    assert parse_spec('swin:tiny') == ('swin', 'tiny') and parse_spec('cvt:13') == ('cvt', '13')
    for bad in ('vit:tiny', 'swin', 'swin:', 'Swin:tiny'):
        with pytest.raises(ValueError, match=f'unknown model {bad!r}; use family:arch'):
            parse_spec(bad)
    with pytest.raises(ValueError, match="unknown backbone family 'vit'"):
        family_of('vit')


def test_build_backbone_from_a_spec_or_a_name_and_arch():
    model = build_backbone('cvt:13')
    assert type(model) is backbones.CvT and model.with_cp is False
    arch = dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 4))
    model = build_backbone('CSWin', arch, with_cp='act')
    assert type(model) is backbones.CSWin and model.with_cp == 'act'
    # drop path off unless asked for: benchmarks and checks compare runs
    assert not any(drop_rates(model))
    assert max(drop_rates(build_backbone('CSWin', arch, drop_path_rate=0.3))) > 0


def drop_rates(model):
    return [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
