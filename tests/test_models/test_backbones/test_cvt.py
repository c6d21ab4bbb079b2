import math

import pytest
import torch
import torch.nn.functional as F

from attention_checks import check_auto_attention_choice, check_same_outputs_and_gradients
from backbone_checks import (assert_pyramid, assert_rel_close, check_bad_inputs,
                             check_checkpoint_errors, check_frozen_stages, check_with_cp_same_grads,
                             run_mask_rcnn_step, run_upernet_step)
from checkpoint_layouts import official_names
from mmvit_plugin.models import attention as attention_module
from mmvit_plugin.models.backbones import cvt as cvt_module
from mmvit_plugin.models.backbones.cvt import CvT, convert_cvt_checkpoint

# Parameter counts of the official classification model without its norm/head (the three native
# stages), measured by building the official module.
OFFICIAL_NATIVE_PARAMS = {'13': 19611712, '21': 31236928, 'w24': 276169344}
# Our stride-32 stage (conv embedding + LN, one block) per arch.
EXTRA_STAGE_PARAMS = {'13': 3115392, '21': 3115392, 'w24': 22070272}


def small_cvt(**kwargs):
    kwargs.setdefault('arch', dict(embed_dims=(16, 32, 48, 48), num_heads=(1, 2, 3, 3),
                                   depths=(1, 1, 2, 1)))
    kwargs.setdefault('drop_path_rate', 0.1)
    return CvT(**kwargs)


def level_sizes(H, W):
    sizes = [((H - 3) // 4 + 1, (W - 3) // 4 + 1)]
    for _ in range(3):
        sizes.append(tuple(math.ceil(s / 2) for s in sizes[-1]))
    return sizes


def randomise_(model):
    """Non-trivial weights and BN running statistics."""
    torch.manual_seed(0)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key.endswith('running_var'):
                t.uniform_(0.5, 2.)
            elif key.endswith('running_mean'):
                t.normal_(0, 0.3)
            elif t.is_floating_point():
                t.normal_(0, 0.3 if t.dim() == 1 else 0.05)
    return model


@pytest.mark.parametrize('arch', sorted(OFFICIAL_NATIVE_PARAMS))
def test_param_counts(arch):
    with torch.device('meta'):
        model = CvT(arch)
    native = sum(p.numel() for n, p in model.named_parameters() if not n.startswith('stages.3.'))
    extra = sum(p.numel() for p in model.stages[3].parameters())
    assert native == OFFICIAL_NATIVE_PARAMS[arch]
    assert extra == EXTRA_STAGE_PARAMS[arch]
    assert model.stages[2].cls_token is not None and model.stages[3].cls_token is None


def test_cvt13_shapes():
    model = CvT('13').eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 97, 131))
    assert_pyramid(outs, 1, (97, 131), [64, 192, 384, 384], level_sizes(97, 131))


@pytest.mark.parametrize('size', [(97, 131), (333, 517), (32, 32), (37, 29), (3, 3), (8, 5)])
def test_any_size(size):
    model = small_cvt().eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert_pyramid(outs, 2, size, [16, 32, 48, 48], level_sizes(*size))


def test_extra_stage_configurable():
    arch = dict(embed_dims=(16, 32, 48, 64), num_heads=(1, 2, 3, 4), depths=(1, 1, 1, 0))
    model = CvT(arch).eval()
    assert len(model.stages[3].blocks) == 0
    assert sum(p.numel() for p in model.stages[3].parameters()) == 48 * 64 * 9 + 64 + 2 * 64
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 32, 48, 64]
    # The extra stage attends globally at stride 1; the native ones at k/v stride 2.
    arch['depths'] = (1, 1, 1, 2)
    model = CvT(arch)
    assert model.stages[3].blocks[0].attn.conv_proj_k.conv.stride == (1, 1)
    assert model.stages[2].blocks[0].attn.conv_proj_k.conv.stride == (2, 2)


def test_out_indices_skip_unused_stages():
    model = small_cvt(out_indices=(1, )).train()
    outs = model(torch.randn(2, 3, 64, 64))
    assert len(outs) == 1 and outs[0].shape == (2, 32, 8, 8)
    outs[0].sum().backward()
    assert all(p.grad is None for p in model.stages[2].parameters())
    model = small_cvt(out_indices=(0, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 48]
    with pytest.raises(ValueError, match='out_indices'):
        small_cvt(out_indices=(4, ))


def test_drop_path_schedule():
    model = CvT('13')
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for b in model.stages[2].blocks]
    assert rates == torch.linspace(0, 0.1, 10).tolist()  # the official schedule, computed alike
    assert all(getattr(b.drop_path, 'drop_prob', 0.) == 0 for s in (0, 1)
               for b in model.stages[s].blocks)
    assert model.stages[3].blocks[0].drop_path.drop_prob == pytest.approx(0.1)
    model = small_cvt(drop_path_rate=0.3)
    assert model.stages[2].blocks[1].drop_path.drop_prob == pytest.approx(0.3)
    assert model.stages[3].blocks[0].drop_path.drop_prob == pytest.approx(0.3)
    model = small_cvt(drop_path_rate=(0., 0.2, 0., 0.))
    assert isinstance(model.stages[2].blocks[1].drop_path, torch.nn.Identity)
    with pytest.raises(ValueError, match='drop path'):
        small_cvt(drop_path_rate=(0.1, 0.2))


def _reference_attention(attn, x, H, W, extra):
    """The official computation spelled out: explicit softmax, scale over the whole width."""
    B, N, C = x.shape
    cls, tokens = x[:, :extra], x[:, extra:]
    fmap = tokens.transpose(1, 2).reshape(B, C, H, W)
    qkv = []
    for conv, lin in ((attn.conv_proj_q, attn.proj_q), (attn.conv_proj_k, attn.proj_k),
                      (attn.conv_proj_v, attn.proj_v)):
        t = conv.bn(conv.conv(fmap)).flatten(2).transpose(1, 2)
        t = lin(torch.cat([cls, t], 1))
        qkv.append(t.view(B, t.shape[1], attn.num_heads, -1).transpose(1, 2))
    q, k, v = qkv
    weights = (q @ k.transpose(-2, -1) * C**-0.5).softmax(-1)
    return attn.proj((weights @ v).transpose(1, 2).reshape(B, N, C))


@pytest.mark.numerics
@pytest.mark.parametrize('extra', [0, 1])
def test_attention_matches_explicit_reference(extra):
    block = randomise_(small_cvt()).stages[2].blocks[0].eval()
    H, W = 5, 7
    x = torch.randn(2, extra + H * W, 48)
    with torch.no_grad():
        assert_rel_close(block.attn(x, H, W), _reference_attention(block.attn, x, H, W, extra), 1e-5)


def test_attention_uses_fused_sdpa(monkeypatch):
    """4-D q/k/v, no mask and an explicit scale: what lets the flash kernels keep memory linear."""
    calls = []
    sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kwargs):
        calls.append((q.shape, k.shape, attn_mask, kwargs.get('scale')))
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(attention_module.F, 'scaled_dot_product_attention', spy)
    model = small_cvt(attn_impl='sdpa').eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert len(calls) == 5
    q0, k0, mask, scale = calls[0]
    assert q0 == (1, 1, 16 * 16, 16) and k0 == (1, 1, 8 * 8, 16)
    assert all(c[2] is None for c in calls)
    assert calls[2][0] == (1, 3, 1 + 4 * 4, 16) and calls[2][3] == pytest.approx(48**-0.5)


@pytest.mark.numerics
@pytest.mark.parametrize('extra', [0, 1])
def test_explicit_attention_matches_reference(extra):
    block = randomise_(small_cvt(attn_impl='explicit')).stages[2].blocks[0].eval()
    H, W = 5, 7
    x = torch.randn(2, extra + H * W, 48)
    with torch.no_grad():
        assert_rel_close(block.attn(x, H, W), _reference_attention(block.attn, x, H, W, extra), 1e-5)


@pytest.mark.numerics
@pytest.mark.parametrize('size', [(75, 101), (29, 37)])
def test_attention_implementations_agree(size):
    """attn_impl='sdpa' and 'explicit' give the same outputs and gradients (cls token, strided
    k/v and the stride-1 last stage included); BN in eval mode so both see the same statistics."""
    explicit = randomise_(small_cvt(drop_path_rate=0., attn_impl='explicit')).eval()
    sdpa = small_cvt(drop_path_rate=0., attn_impl='sdpa').eval()
    sdpa.load_state_dict(explicit.state_dict())
    torch.manual_seed(1)
    check_same_outputs_and_gradients(explicit, sdpa, torch.randn(2, 3, *size))


def test_attn_impl_is_checked_and_auto_picks_by_device():
    with pytest.raises(ValueError, match="CvT: attn_impl must be one of"):
        small_cvt(attn_impl='flash')
    assert small_cvt(attn_impl='explicit').stages[3].blocks[0].attn.attn_impl == 'explicit'
    check_auto_attention_choice(cvt_module, small_cvt)


def test_with_cp_same_gradients():
    check_with_cp_same_grads(small_cvt)


@pytest.mark.parametrize('with_cp', [False, 'act', True])
def test_with_cp_setting_reaches_the_mlps(with_cp):
    model = small_cvt(with_cp=with_cp)
    assert model.with_cp == with_cp
    mlps = [block.mlp for stage in model.stages for block in stage.blocks]
    assert mlps and all(mlp.recompute_act == (with_cp == 'act') for mlp in mlps)


def test_with_cp_act_same_gradients():
    check_with_cp_same_grads(lambda with_cp: small_cvt(with_cp='act' if with_cp else False))


def test_frozen_stages():
    prefixes = {-1: ['stages.0.patch_embed.'], 0: ['stages.0.blocks.'], 1: ['stages.1.'],
                2: ['stages.2.'], 3: ['stages.3.']}
    check_frozen_stages(small_cvt, prefixes)
    model = small_cvt(frozen_stages=3).train()
    assert not model.stages[2].cls_token.requires_grad
    assert model.stages[3].blocks[0].attn.proj.weight.requires_grad


def _bn_stats(model):
    return {k: v.clone() for k, v in model.state_dict().items() if 'running' in k}


def test_norm_eval_keeps_bn_statistics():
    x = torch.randn(2, 3, 64, 64)
    model = small_cvt(norm_eval=True).train()
    before = _bn_stats(model)
    assert before
    model(x)
    for key, value in _bn_stats(model).items():
        assert torch.equal(value, before[key]), key
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert model.stages[1].blocks[0].norm1.training
    # Without norm_eval the statistics move.
    model = small_cvt(norm_eval=False).train()
    before = _bn_stats(model)
    model(x)
    assert any(not torch.equal(v, before[k]) for k, v in _bn_stats(model).items())


def test_bad_input_and_arch():
    check_bad_inputs(small_cvt())
    with pytest.raises(ValueError, match='at least 3'):
        small_cvt()(torch.randn(1, 3, 2, 64))
    with pytest.raises(ValueError, match='unknown arch'):
        CvT('huge')
    with pytest.raises(ValueError, match='lacks'):
        CvT(dict(embed_dims=(64, 192, 384, 384)))
    with pytest.raises(ValueError, match='4 entries'):
        CvT(dict(embed_dims=(64, 192, 384), num_heads=(1, 3, 6), depths=(1, 2, 10)))
    with pytest.raises(ValueError, match='heads'):
        CvT(dict(embed_dims=(64, 192, 384, 384), num_heads=(1, 5, 6, 6), depths=(1, 2, 10, 1)))


def _official_flat_file(model):
    """Our weights laid out as an official CvT release: a flat dict with the official key names
    (``stage{i}`` for our ``stages.{i}``), no stride-32 stage, and the classifier's final norm and
    head."""
    sd = official_names({k: v.clone() for k, v in model.state_dict().items()
                         if not k.startswith('stages.3.')}, 'cvt')
    dims = model.embed_dims[2]
    sd.update({'norm.weight': torch.ones(dims), 'norm.bias': torch.zeros(dims),
               'head.weight': torch.zeros(1000, dims), 'head.bias': torch.zeros(1000)})
    return sd


OFFICIAL_KEYS = ['stage0.patch_embed.proj.weight', 'stage0.patch_embed.norm.bias',
                 'stage2.cls_token', 'stage1.blocks.0.attn.conv_proj_k.conv.weight',
                 'stage1.blocks.0.attn.conv_proj_v.bn.running_var',
                 'stage2.blocks.1.attn.proj_q.bias',
                 'stage2.blocks.1.attn.proj.weight', 'stage0.blocks.0.mlp.fc2.weight',
                 'stage0.blocks.0.norm2.weight']


def test_loads_official_flat_release(tmp_path):
    source = randomise_(small_cvt()).eval()
    official = _official_flat_file(source)
    assert set(OFFICIAL_KEYS) <= set(official)
    path = tmp_path / 'CvT-small-IN-1k.pth'
    torch.save(official, path)
    model = small_cvt(init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    model.init_weights()
    x = torch.randn(1, 3, 97, 131)
    with torch.no_grad():
        ours, ref = model(x), source(x)
    for a, b in zip(ours[:3], ref[:3]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(ours[3], ref[3])  # the extra stage is not in the file
    missing, unexpected = model.load_pretrained(str(path))
    assert sorted(missing) == sorted(k for k in source.state_dict()
                                     if k.startswith('stages.3.') and 'num_batches' not in k)
    assert sorted(unexpected) == ['head.bias', 'head.weight', 'norm.bias', 'norm.weight']
    # The same dict through load_state_dict (the pre-hook) and under a DataParallel prefix.
    other = small_cvt().eval()
    result = other.load_state_dict(official, strict=False)
    assert all(k.startswith('stages.3.') for k in result.missing_keys)
    torch.save({'module.' + k: v for k, v in official.items()}, path)
    other.load_pretrained(str(path))
    with torch.no_grad():
        torch.testing.assert_close(other(x)[2], ref[2], rtol=0, atol=0)


def test_loads_dense_checkpoint_with_backbone_prefix(tmp_path):
    source = randomise_(small_cvt()).eval()
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.zeros(150, 512, 1, 1)
    path = tmp_path / 'upernet_cvt.pth'
    torch.save({'meta': {'iter': 160000}, 'state_dict': state}, path)
    model = small_cvt(init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    model.init_weights()
    x = torch.randn(1, 3, 61, 83)
    with torch.no_grad():
        for a, b in zip(model(x), source(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_converter_passes_our_layout_through_and_is_idempotent():
    sd = small_cvt().state_dict()
    once = convert_cvt_checkpoint(sd)
    assert list(once) == list(sd) and all(once[k] is sd[k] for k in sd)
    assert list(convert_cvt_checkpoint(once)) == list(sd)


def test_checkpoint_errors(tmp_path):
    model = small_cvt()
    other = {'layers.0.blocks.0.attn.qkv.weight': torch.zeros(48, 16)}
    wrong = {k: torch.zeros(3, *v.shape[1:]) if k == 'stages.0.patch_embed.proj.weight' else v
             for k, v in model.state_dict().items()}
    check_checkpoint_errors(model, tmp_path, other, wrong)


def test_upernet_train_step(tmp_path):
    run_upernet_step(tmp_path, "dict(type='CvT', arch='13', drop_path_rate=0.1)",
                     [64, 192, 384, 384])


def test_mask_rcnn_train_step(tmp_path):
    run_mask_rcnn_step(tmp_path, "dict(type='CvT', arch='13', drop_path_rate=0.1)",
                       [64, 192, 384, 384])
