import pytest
import torch
import torch.nn as nn
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

import mmvit_plugin  # noqa: F401
from mmvit_plugin.models.backbones.swin import Swin


class Segmentor(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = Swin(arch=dict(embed_dims=8, depths=(2, 1, 1, 2), num_heads=(1, 1, 1, 1)))
        self.decode_head = nn.Sequential(nn.Conv2d(64, 4, 1), nn.BatchNorm2d(4))


def build(rate=0.5, **paramwise):
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='ViTLayerDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        paramwise_cfg=dict(layer_decay_rate=rate, **paramwise)))
    model = Segmentor()
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
    assert model.get_layer_depth('layers.0.blocks.0.attn.qkv.weight') == (1, 8)
    assert model.get_layer_depth('layers.0.blocks.1.mlp.fc1.weight') == (2, 8)
    assert model.get_layer_depth('layers.0.downsample.reduction.weight') == (2, 8)
    assert model.get_layer_depth('backbone.layers.3.blocks.1.norm1.weight') == (6, 8)
    assert model.get_layer_depth('norm3.weight') == (6, 8)
    with pytest.raises(KeyError, match='no parameter'):
        model.get_layer_depth('layers.9.weight')


def test_lr_and_weight_decay_per_parameter():
    model, optimizer = build(rate=0.5)
    values = lr_and_wd(model, optimizer)
    assert values['backbone.patch_embed.proj.weight'] == (pytest.approx(1e-3 * 0.5**7), 0.05)
    assert values['backbone.patch_embed.proj.bias'] == (pytest.approx(1e-3 * 0.5**7), 0.0)
    assert values['backbone.layers.0.blocks.0.attn.qkv.weight'] == (pytest.approx(1e-3 * 0.5**6), 0.05)
    assert values['backbone.layers.0.blocks.0.norm1.weight'] == (pytest.approx(1e-3 * 0.5**6), 0.0)
    assert values['backbone.layers.0.blocks.0.attn.relative_position_bias_table'][1] == 0.0
    assert values['backbone.layers.3.blocks.1.mlp.fc2.weight'] == (pytest.approx(1e-3 * 0.5), 0.05)
    # Heads keep the full lr; their norms and biases get no weight decay.
    assert values['decode_head.0.weight'] == (1e-3, 0.05)
    assert values['decode_head.1.weight'] == (1e-3, 0.0)
    # Groups are shared by equal settings, and every trainable parameter is in exactly one.
    assert len(optimizer.param_groups) < 20
    assert sum(len(g['params']) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_custom_no_decay_keys_and_frozen_parameters():
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='ViTLayerDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4)),
        paramwise_cfg=dict(layer_decay_rate=0.9, no_decay_keys=('qkv', ))))
    model = Segmentor()
    model.backbone.patch_embed.requires_grad_(False)
    optimizer = constructor(model).optimizer
    names = {id(p) for g in optimizer.param_groups for p in g['params']}
    assert id(model.backbone.patch_embed.proj.weight) not in names
    values = lr_and_wd(model, optimizer)
    assert values['backbone.layers.0.blocks.0.attn.qkv.weight'][1] == 0.0
    assert values['backbone.layers.0.blocks.0.attn.relative_position_bias_table'][1] == 1e-4


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
