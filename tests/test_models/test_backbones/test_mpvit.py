import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from backbone_checks import (assert_pyramid, assert_rel_close, check_bad_inputs,
                             check_checkpoint_errors, check_frozen_stages, check_with_cp_same_grads,
                             run_mask_rcnn_step, run_upernet_step)
from checkpoint_layouts import official_names
from mmvit_plugin.models.backbones.conversion import MPVIT_OURS, MPVIT_OURS_0_1
from mmvit_plugin.models.backbones.mpvit import (MPViT, convert_mpvit_checkpoint,
                                                 mpvit_checkpoint_layout)
from mmvit_plugin.checkpoint import CheckpointError

# Parameter counts of the official dense backbone, measured by building the official module; the
# classification model adds cls_head.cls (Linear(embed_dims[3], 1000)): 5843736 / 10573448 /
# 22892400 / 74845976, the figures the MPViT paper and code quote.
OFFICIAL_PARAMS = {'tiny': 5626736, 'xsmall': 10316448, 'small': 22603400, 'base': 74364976}
OUT_CHANNELS = {'tiny': [96, 176, 216, 216], 'xsmall': [128, 192, 256, 256],
                'small': [128, 216, 288, 288], 'base': [224, 368, 480, 480]}

SMALL_ARCH = dict(embed_dims=(16, 24, 32, 40), num_layers=(1, 2, 1, 2), num_heads=8, mlp_ratios=2,
                  num_paths=(2, 3, 3, 3))
SMALL_CHANNELS = [24, 32, 40, 40]


def small_mpvit(**kwargs):
    kwargs.setdefault('arch', SMALL_ARCH)
    kwargs.setdefault('drop_path_rate', 0.1)
    return MPViT(**kwargs)


def randomize(model, seed=0):
    """Random weights and BatchNorm statistics, so that every tensor matters in comparisons."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith('running_var'):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1 +
                             (1. if name.endswith(('bn.weight', 'norm.weight')) else 0.))
    return model


@pytest.mark.parametrize('arch', sorted(OFFICIAL_PARAMS))
def test_param_counts_and_channels(arch):
    model = MPViT(arch)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[arch]
    assert model.out_channels == OUT_CHANNELS[arch]
    if arch == 'tiny':
        model.eval()
        with torch.no_grad():
            assert_pyramid(model(torch.randn(1, 3, 97, 131)), 1, (97, 131), OUT_CHANNELS[arch])


@pytest.mark.parametrize('size', [(97, 131), (333, 517), (32, 32), (37, 29), (8, 8), (1, 3)])
def test_any_size(size):
    model = small_mpvit().eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert_pyramid(outs, 2, size, SMALL_CHANNELS)
    assert all(o.is_contiguous() for o in outs)


@pytest.mark.numerics
def test_batch_independence_and_train_mode():
    """An image's eval output ignores its batch-mates; a train step gives finite grads."""
    model = randomize(small_mpvit()).eval()
    x = torch.randn(3, 3, 45, 70)
    with torch.no_grad():
        together = model(x)
        alone = model(x[1:2])
    for i, (a, b) in enumerate(zip(together, alone)):
        assert_rel_close(a[1:2], b, 1e-5, f'level {i}')
    model.train()
    sum(o.sum() for o in model(x)).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def _reference_attention(attn, crpe, x, size):
    """Factorized attention written the straightforward way: per head, with the three CRPE
    convolutions applied to their own channel groups."""
    B, N, C = x.shape
    h = attn.num_heads
    q, k, v = attn.qkv(x).view(B, N, 3, h, C // h).permute(2, 0, 3, 1, 4)
    context = k.softmax(dim=2).transpose(-2, -1) @ v  # (B, h, d, d)
    factor = q @ context * (C // h)**-0.5
    v_map = v.transpose(1, 2).reshape(B, *size, C).permute(0, 3, 1, 2)
    splits = [conv.in_channels for conv in crpe.conv_list]
    parts = v_map.split(splits, 1)
    conv_v = torch.cat([conv(part) for conv, part in zip(crpe.conv_list, parts)], 1)
    conv_v = conv_v.flatten(2).view(B, h, C // h, N).transpose(-2, -1)
    out = (factor + q * conv_v).transpose(1, 2).reshape(B, N, C)
    return attn.proj(out)


@pytest.mark.numerics
@pytest.mark.parametrize('stage_dims, block_diagonal', [(24, True), (128, False)])
def test_factorized_attention_matches_per_head_reference(stage_dims, block_diagonal):
    """Both forms (heads of 3 channels: one masked C x C product; of 16: per-head products)
    against the per-head formula, forward and backward."""
    torch.manual_seed(0)
    model = randomize(small_mpvit(arch=dict(SMALL_ARCH, embed_dims=(16, stage_dims, 32, 40))))
    encoder = model.stages[1].mhca_blks[2]
    attn = encoder.MHCA_layers[0].factoratt_crpe
    assert attn.block_diagonal == block_diagonal
    size = (7, 9)
    x = torch.randn(2, 63, stage_dims)
    with torch.no_grad():
        ours = attn(x, size, encoder.crpe)
        ref = _reference_attention(attn, encoder.crpe, x, size)
    assert_rel_close(ours, ref, 1e-5)
    # In float64 the whole computation is float64, the attention scale included (it used to be
    # folded into a float32 buffer: 4e-9 off); so are the gradients.
    attn, crpe = attn.double(), encoder.crpe.double()
    params = [*attn.parameters(), *crpe.parameters()]
    results = []
    for forward in (attn, lambda x, size, crpe: _reference_attention(attn, crpe, x, size)):
        x64 = x.double().requires_grad_()
        out = forward(x64, size, crpe)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        results.append([out.detach(), x64.grad, *(p.grad.clone() for p in params)])
        for p in params:
            p.grad = None
    for name, a, b in zip(['output', 'input grad'] + [f'param {i}' for i in range(len(params))],
                          *results):
        assert_rel_close(a, b, 1e-12, name)


def test_out_indices():
    model = small_mpvit(out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 70, 50))
    assert [tuple(o.shape) for o in outs] == [(1, 32, 9, 7), (1, 40, 3, 2)]
    with pytest.raises(ValueError, match='out_indices'):
        small_mpvit(out_indices=(4, ))


def test_with_cp_same_gradients():
    check_with_cp_same_grads(small_mpvit)


@pytest.mark.parametrize('with_cp', [False, 'act', True])
def test_with_cp_setting_reaches_the_mlps(with_cp):
    model = small_mpvit(with_cp=with_cp)
    assert model.with_cp == with_cp
    mlps = [layer.mlp for stage in model.stages for encoder in stage.mhca_blks
            for layer in encoder.MHCA_layers]
    assert mlps and all(mlp.recompute_act == (with_cp == 'act') for mlp in mlps)


def test_with_cp_act_same_gradients():
    check_with_cp_same_grads(lambda with_cp: small_mpvit(with_cp='act' if with_cp else False))


def test_frozen_stages():
    prefixes = {-1: ['stem.']}
    prefixes.update({i: [f'stages.{i}.'] for i in range(4)})
    check_frozen_stages(small_mpvit, prefixes)


def test_norm_cfg_and_norm_eval():
    model = small_mpvit(norm_cfg=dict(type='SyncBN'), norm_eval=True)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(isinstance(m, nn.SyncBatchNorm) for m in bns)
    model.train()
    assert all(not m.training for m in bns)
    assert model.stages[0].mhca_blks[0].MHCA_layers[0].training
    before = [m.running_mean.clone() for m in bns]
    model(torch.randn(2, 3, 40, 40))
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, bns))
    # norm_eval=False: BatchNorm trains and updates its statistics.
    model = small_mpvit()
    model.train()
    bn = model.stem[0].bn
    assert isinstance(bn, nn.BatchNorm2d) and not isinstance(bn, nn.SyncBatchNorm) and bn.training
    model(torch.randn(2, 3, 40, 40))
    assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))


def test_bad_input_and_arch():
    check_bad_inputs(small_mpvit())
    with pytest.raises(ValueError, match='unknown arch'):
        MPViT('huge')
    with pytest.raises(ValueError, match='lacks'):
        MPViT(dict(embed_dims=(16, 24, 32, 40)))
    with pytest.raises(ValueError, match='heads'):
        small_mpvit(arch=dict(SMALL_ARCH, num_heads=4))  # CRPE groups cover 8 heads
    with pytest.raises(ValueError, match='split'):
        small_mpvit(arch=dict(SMALL_ARCH, embed_dims=(16, 24, 30, 40)))
    with pytest.raises(ValueError, match='4 stages'):
        small_mpvit(arch=dict(SMALL_ARCH, num_layers=(1, 1, 1)))
    # Fewer heads work with matching CRPE groups.
    model = small_mpvit(arch=dict(SMALL_ARCH, num_heads=4), crpe_windows=((3, 1), (5, 1), (7, 2)))
    assert_pyramid(model(torch.randn(1, 3, 33, 33)), 1, (33, 33), SMALL_CHANNELS)


def _shared_key_copies(state_dict, num_layers):
    """Official duplicates of the shared encodings: under each layer's cpe, crpe and
    factoratt_crpe.crpe."""
    copies = {}
    for key, value in state_dict.items():
        match = re.match(r'^(mhca_stages\.(\d+)\.mhca_blks\.\d+\.)(cpe|crpe)\.(.*)$', key)
        if not match:
            continue
        prefix, stage, kind, rest = match.groups()
        for layer in range(num_layers[int(stage)]):
            owners = ['cpe'] if kind == 'cpe' else ['crpe', 'factoratt_crpe.crpe']
            for owner in owners:
                copies[f'{prefix}MHCA_layers.{layer}.{owner}.{rest}'] = value.clone()
    return copies


def _official_state(model, classification):
    """Our weights laid out as an official file: official names, shared encodings repeated under
    every layer, plus the classifier for classification releases."""
    own = official_names(model.state_dict(), 'mpvit')
    state = {}
    for key, value in own.items():  # the official order: encoder-level copy first, then layers
        state[key] = value.clone()
    state.update(_shared_key_copies(own, SMALL_ARCH['num_layers']))
    if classification:
        state['cls_head.cls.weight'] = torch.randn(1000, 40)
        state['cls_head.cls.bias'] = torch.zeros(1000)
    return state


def test_converter_dedups_and_is_idempotent():
    model = randomize(small_mpvit())
    own = model.state_dict()
    official = _official_state(model, classification=True)
    assert len(official) > len(own) + 2
    converted = convert_mpvit_checkpoint(official)
    assert converted.keys() == own.keys()
    assert all(torch.equal(converted[k], own[k]) for k in own)
    assert convert_mpvit_checkpoint(converted).keys() == own.keys()
    assert convert_mpvit_checkpoint(own).keys() == own.keys()
    assert mpvit_checkpoint_layout(own) == MPVIT_OURS
    release_0_1 = official_names(own, 'mpvit')  # the official lists, each encoding stored once
    assert mpvit_checkpoint_layout(release_0_1) == MPVIT_OURS_0_1
    assert convert_mpvit_checkpoint(release_0_1).keys() == own.keys()
    # A file holding only the per-layer copies (no encoder-level key) still loads them.
    only_copies = {k: v for k, v in official.items()
                   if not re.match(r'.*mhca_blks\.\d+\.(cpe|crpe)\.', k)}
    assert convert_mpvit_checkpoint(only_copies).keys() == own.keys()


def test_disagreeing_duplicates_raise(tmp_path):
    model = small_mpvit()
    state = _official_state(model, classification=False)
    bad = 'mhca_stages.1.mhca_blks.2.MHCA_layers.1.factoratt_crpe.crpe.conv_list.1.weight'
    state[bad] = state[bad] + 1
    with pytest.raises(CheckpointError, match=re.escape(bad)) as err:
        convert_mpvit_checkpoint(state)
    assert 'mhca_stages.1.mhca_blks.2.crpe.conv_list.1.weight' in str(err.value)
    path = tmp_path / 'bad.pth'
    torch.save({'model': state}, path)
    with pytest.raises(CheckpointError, match='different values'):
        model.load_pretrained(str(path))
    with pytest.raises(CheckpointError, match='different values'):
        model.load_state_dict(state)


def _assert_same_outputs(a, b, x):
    a.eval(), b.eval()
    with torch.no_grad():
        for u, v in zip(a(x), b(x)):
            torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_loads_classification_release(tmp_path):
    source = randomize(small_mpvit(), seed=1)
    path = tmp_path / 'mpvit_cls.pth'
    torch.save({'model': _official_state(source, classification=True)}, path)
    model = small_mpvit(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    _assert_same_outputs(model, source, torch.randn(1, 3, 61, 83))
    missing, unexpected = model.load_pretrained(str(path))
    assert not missing and not unexpected  # the classifier is dropped by the converter
    # The raw official dict through load_state_dict (strict) converts too.
    fresh = small_mpvit()
    fresh.load_state_dict(_official_state(source, classification=True), strict=True)
    _assert_same_outputs(fresh, source, torch.randn(1, 3, 40, 52))


@pytest.mark.parametrize('layout', ['flat', 'state_dict_backbone'])
def test_loads_segmentation_checkpoint(tmp_path, layout):
    source = randomize(small_mpvit(), seed=2)
    state = _official_state(source, classification=False)
    if layout == 'flat':
        checkpoint = state
    else:
        state = {f'backbone.{k}': v for k, v in state.items()}
        state['decode_head.conv_seg.weight'] = torch.zeros(150, 512, 1, 1)
        checkpoint = {'meta': {'iter': 160000}, 'state_dict': state}
    path = tmp_path / f'mpvit_{layout}.pth'
    torch.save(checkpoint, path)
    model = small_mpvit(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    _assert_same_outputs(model, source, torch.randn(2, 3, 45, 67))
    if layout != 'flat':
        # The same file through a whole-model load_state_dict (what `load_from` does).
        wrapper = nn.Module()
        wrapper.backbone = small_mpvit()
        missing, unexpected = wrapper.load_state_dict(
            {k: v for k, v in state.items() if k.startswith('backbone.')}, strict=True)
        assert not missing and not unexpected
        _assert_same_outputs(wrapper.backbone, source, torch.randn(1, 3, 33, 30))


def test_checkpoint_errors(tmp_path):
    model = small_mpvit()
    other = {'stage1_conv_embed.0.weight': torch.zeros(64, 3, 7, 7)}
    wrong = {k: torch.zeros(5, *v.shape[1:]) if k == 'stem.0.conv.weight' else v
             for k, v in model.state_dict().items()}
    check_checkpoint_errors(model, tmp_path, other, wrong)
    # Another arch's release: shape mismatches, not a silent partial load.
    path = tmp_path / 'tiny.pth'
    torch.save({'model': MPViT('tiny').state_dict()}, path)
    with pytest.raises(CheckpointError, match='shape'):
        model.load_pretrained(str(path))


def test_upernet_train_step(tmp_path):
    run_upernet_step(tmp_path, "dict(type='MPViT', arch='tiny', drop_path_rate=0.1)",
                     OUT_CHANNELS['tiny'])


def test_mask_rcnn_train_step(tmp_path):
    run_mask_rcnn_step(tmp_path, "dict(type='MPViT', arch='tiny', drop_path_rate=0.1)",
                       OUT_CHANNELS['tiny'])
