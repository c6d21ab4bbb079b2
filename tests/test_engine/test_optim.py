from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

import mmvit_plugin  # noqa: F401
from mmvit_plugin.models.backbones.swin import Swin

REPO = Path(__file__).resolve().parents[2]


class Segmentor(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = Swin(arch=dict(embed_dims=8, depths=(2, 1, 1, 2), num_heads=(1, 1, 1, 1)))
        self.decode_head = nn.Sequential(nn.Conv2d(64, 4, 1), nn.BatchNorm2d(4),
                                         nn.Conv2d(4, 4, 3, groups=4))


def build(rate=0.5, frozen=None, **paramwise):
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='ViTLayerDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        paramwise_cfg=dict(layer_decay_rate=rate, **paramwise)))
    model = Segmentor()
    if frozen:
        model.get_submodule(frozen).requires_grad_(False)
    return model, constructor(model).optimizer


def lr_and_wd(model, optimizer):
    """(lr, weight decay) of each trainable parameter."""
    index = {id(p): g for g in optimizer.param_groups for p in g['params']}
    return {n: (index[id(p)]['lr'], index[id(p)]['weight_decay'])
            for n, p in model.named_parameters() if id(p) in index}


def test_swin_layer_depths():
    model = Segmentor().backbone
    # 6 blocks -> depths 0 (stem) .. 7 (the rest)
    assert model.get_layer_depth('patch_embed.proj.weight') == (0, 8)
    assert model.get_layer_depth('stages.0.blocks.0.attn.qkv.weight') == (1, 8)
    assert model.get_layer_depth('stages.0.blocks.1.mlp.fc1.weight') == (2, 8)
    assert model.get_layer_depth('stages.0.downsample.reduction.weight') == (2, 8)
    assert model.get_layer_depth('backbone.stages.3.blocks.1.norm1.weight') == (6, 8)
    assert model.get_layer_depth('stages.3.out_norm.weight') == (6, 8)
    with pytest.raises(KeyError, match='no parameter'):
        model.get_layer_depth('layers.9.weight')


def test_lr_and_weight_decay_per_parameter():
    model, optimizer = build(rate=0.5)
    values = lr_and_wd(model, optimizer)
    assert values['backbone.patch_embed.proj.weight'] == (pytest.approx(1e-3 * 0.5**7), 0.05)
    assert values['backbone.patch_embed.proj.bias'] == (pytest.approx(1e-3 * 0.5**7), 0.0)
    assert values['backbone.stages.0.blocks.0.attn.qkv.weight'] == (pytest.approx(1e-3 * 0.5**6), 0.05)
    assert values['backbone.stages.0.blocks.0.norm1.weight'] == (pytest.approx(1e-3 * 0.5**6), 0.0)
    # 2-D: no-decay names come from custom_keys only (the configs' list; see the test below)
    assert values['backbone.stages.0.blocks.0.attn.relative_position_bias_table'][1] == 0.05
    assert values['backbone.stages.3.blocks.1.mlp.fc2.weight'] == (pytest.approx(1e-3 * 0.5), 0.05)
    # Heads keep the full lr; their norms and biases get no weight decay.
    assert values['decode_head.0.weight'] == (1e-3, 0.05)
    assert values['decode_head.1.weight'] == (1e-3, 0.0)
    # Groups are shared by equal settings, and every trainable parameter is in exactly one.
    assert len(optimizer.param_groups) < 20
    assert sum(len(g['params']) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_custom_keys_multiply_with_layer_decay_and_frozen_parameters_are_left_out():
    model, optimizer = build(rate=0.5, custom_keys={
        'decode_head': dict(lr_mult=10.),
        'backbone.stages.0.blocks.0.attn': dict(lr_mult=0.1, decay_mult=2.),
        'relative_position_bias_table': dict(decay_mult=0.),
    }, frozen='backbone.patch_embed')
    values = lr_and_wd(model, optimizer)
    assert not any(name.startswith('backbone.patch_embed.') for name in values)
    # custom lr_mult and decay_mult, then layer decay on top (depth 1 of 8)
    assert values['backbone.stages.0.blocks.0.attn.qkv.weight'] == (
        pytest.approx(1e-3 * 0.1 * 0.5**6), pytest.approx(0.05 * 2))
    # a bias under the same key: lr as above, but no weight decay (BEiT convention)
    assert values['backbone.stages.0.blocks.0.attn.qkv.bias'] == (pytest.approx(1e-3 * 0.1 * 0.5**6), 0.0)
    # a 2-D parameter that custom_keys exempts from weight decay
    assert values['backbone.stages.0.blocks.1.attn.relative_position_bias_table'] == (
        pytest.approx(1e-3 * 0.5**5), 0.0)
    assert values['backbone.stages.0.blocks.1.attn.qkv.weight'] == (pytest.approx(1e-3 * 0.5**5), 0.05)
    assert values['decode_head.0.weight'] == (pytest.approx(1e-2), 0.05)  # neck/heads: no layer decay
    assert values['decode_head.1.bias'] == (pytest.approx(1e-2), 0.0)


def test_mmengine_rules_are_honoured():
    model, optimizer = build(rate=1.0, bias_lr_mult=2., dwconv_decay_mult=0.)
    values = lr_and_wd(model, optimizer)
    assert values['backbone.stages.0.blocks.0.attn.qkv.bias'] == (pytest.approx(2e-3), 0.0)
    assert values['backbone.stages.0.blocks.0.attn.qkv.weight'] == (1e-3, 0.05)
    assert values['decode_head.2.weight'] == (1e-3, 0.0)  # depth-wise conv


def test_the_configs_no_decay_list_applies():
    """The configs' one list (configs/_base_/vit_common.py) with layer decay, as a config sets it."""
    from mmengine.config import Config
    paramwise = Config.fromfile(str(REPO / 'configs' / '_base_' / 'vit_common.py')).vit_paramwise_cfg
    model, optimizer = build(rate=0.9, **paramwise.to_dict())
    values = lr_and_wd(model, optimizer)
    assert values['backbone.stages.0.blocks.0.attn.relative_position_bias_table'][1] == 0.0
    assert values['backbone.stages.0.out_norm.weight'][1] == 0.0
    assert values['backbone.stages.0.blocks.0.mlp.fc1.weight'][1] == 0.05


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match='layer_decay_rate'):
        OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
            type='ViTLayerDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(optimizer=dict(type='AdamW', lr=1e-3)), paramwise_cfg=dict()))
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='ViTLayerDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        paramwise_cfg=dict(layer_decay_rate=0.9)))
    with pytest.raises(TypeError, match='get_layer_depth'):
        constructor(nn.Sequential(nn.Linear(2, 2)))


@pytest.mark.parametrize('rate, paramwise, message', [
    (0.9, dict(no_decay_keys=('qkv', )), r"unknown paramwise_cfg key\(s\) \['no_decay_keys'\]"),
    (0.9, dict(norm_decay_mul=0.), r"unknown paramwise_cfg key\(s\) \['norm_decay_mul'\]"),
    (0.9, dict(bias_decay_mult=1.), 'bias_decay_mult=1.0 cannot take effect'),
    (1.5, dict(), r'layer_decay_rate must be a number in \(0, 1\]'),
])
def test_rejects_settings_it_cannot_honour(rate, paramwise, message):
    with pytest.raises(ValueError, match=message):
        build(rate=rate, **paramwise)
