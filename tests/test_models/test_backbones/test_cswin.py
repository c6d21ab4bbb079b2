import re

import pytest
import torch
import torch.nn.functional as F

from attention_checks import check_auto_attention_choice, check_same_outputs_and_gradients
from backbone_checks import (assert_pyramid, assert_rel_close, check_bad_inputs,
                             check_checkpoint_errors, check_frozen_stages, check_with_cp_same_grads,
                             run_mask_rcnn_step, run_upernet_step)
from mmvit_plugin.models.backbones import cswin as cswin_module
from mmvit_plugin.models.backbones.cswin import CSWin, CSWinBlock, convert_cswin_checkpoint

# Parameter counts of the official dense backbone (segmentation/backbone/cswin_transformer.py, with
# norm1..4 instead of the classifier's norm/head), measured by building the official module. The
# official dense code cannot build CSWin-L (it derives widths from head ratios); its count is the
# official classification model's (173,262,664) minus norm/head plus the four output norms.
OFFICIAL_PARAMS = {'tiny': 21808448, 'small': 34131200, 'base': 76614528, 'large': 172111680}

SMALL_ARCH = dict(embed_dims=16, depths=(1, 2, 2, 1), num_heads=(2, 2, 4, 4))
SMALL_CHANNELS = [16, 32, 64, 128]


def small_cswin(**kwargs):
    kwargs.setdefault('arch', SMALL_ARCH)
    kwargs.setdefault('drop_path_rate', 0.1)
    return CSWin(**kwargs)


def level_sizes(H, W):
    """Stem conv 7x7 s4 p2, then ceil(/2) per merge."""
    sizes = [((H - 3) // 4 + 1, (W - 3) // 4 + 1)]
    for _ in range(3):
        sizes.append(tuple(-(-s // 2) for s in sizes[-1]))
    return sizes


@pytest.mark.parametrize('arch', sorted(OFFICIAL_PARAMS))
def test_param_counts_and_shapes(arch):
    with torch.device('meta'):  # counting needs no memory or init time
        model = CSWin(arch)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[arch]
    if arch == 'tiny':
        model = CSWin(arch).eval()
        with torch.no_grad():
            assert_pyramid(model(torch.randn(1, 3, 97, 131)), 1, (97, 131), [64, 128, 256, 512],
                           level_sizes(97, 131))


@pytest.mark.parametrize('size', [(97, 131), (333, 517), (32, 32), (37, 29), (3, 5)])
def test_any_size(size):
    model = small_cswin().eval()
    with torch.no_grad():
        assert_pyramid(model(torch.randn(2, 3, *size)), 2, size, SMALL_CHANNELS, level_sizes(*size))


def test_out_indices_and_split_size():
    model = small_cswin(out_indices=(1, 3), split_size=(1, 2, 12, 12)).eval()
    outs = model(torch.randn(1, 3, 70, 50))
    sizes = level_sizes(70, 50)
    assert [tuple(o.shape) for o in outs] == [(1, 32, *sizes[1]), (1, 128, *sizes[3])]
    assert model.stages[0].out_norm is None and model.stages[3].out_norm is not None
    with pytest.raises(ValueError, match='out_indices'):
        small_cswin(out_indices=(4, ))
    with pytest.raises(ValueError, match='split_size'):
        small_cswin(split_size=(1, 2, 7))
    with pytest.raises(ValueError, match='even'):
        small_cswin(arch=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8)))


def test_widths_double_whatever_the_heads():
    # CSWin-L's heads (6, 12, 24, 24) would give the official dense code 576 channels at stride 32.
    model = CSWin(dict(embed_dims=12, depths=(1, 1, 1, 1), num_heads=(2, 4, 6, 6)), qkv_bias=False)
    assert model.num_features == [12, 24, 48, 96]
    assert model.stages[3].blocks[0].attn.qkv.in_features == 96
    assert model.stages[0].blocks[0].attn.qkv.bias is None
    assert [o.shape[1] for o in model(torch.randn(1, 3, 40, 36))] == [12, 24, 48, 96]


def reference_attention(attn, x):
    """The cross-shaped attention written naively: each branch pads its q/k/v centred, then loops
    over the stripes of the original (untransposed) map with an explicit softmax and a per-stripe
    LePE convolution."""
    B, H, W, C = x.shape
    qkv = F.linear(x, attn.qkv.weight, attn.qkv.bias).view(B, H, W, 3, attn.num_branches, -1)
    outs = []
    for b in range(attn.num_branches):
        q, k, v = qkv[..., b, :].unbind(3)
        sh, sw = (H, W) if attn.split_size is None else \
            ((H, attn.split_size) if b == 0 else (attn.split_size, W))
        ph, pw = -H % sh, -W % sw
        pad = (0, 0, pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        q, k, v = (F.pad(t, pad) for t in (q, k, v))
        out = torch.zeros_like(q)
        heads, c = attn.branch_heads, q.shape[-1]
        for i in range(0, q.shape[1], sh):
            for j in range(0, q.shape[2], sw):
                qs, ks, vs = (t[:, i:i + sh, j:j + sw].reshape(B, -1, heads, c // heads).transpose(1, 2)
                              for t in (q, k, v))
                weights = (qs @ ks.transpose(-1, -2) * (c // heads)**-0.5).softmax(-1)
                y = (weights @ vs).transpose(1, 2).reshape(B, sh, sw, c)
                lepe = attn.lepe[b](v[:, i:i + sh, j:j + sw].permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
                out[:, i:i + sh, j:j + sw] = y + lepe
        outs.append(out[:, ph // 2:ph // 2 + H, pw // 2:pw // 2 + W])
    return attn.proj(torch.cat(outs, -1))


@pytest.mark.numerics
@pytest.mark.parametrize('split,size', [(2, (8, 10)), (3, (7, 11)), (4, (10, 6)), (None, (5, 7))])
def test_attention_matches_naive_stripes(split, size):
    torch.manual_seed(0)
    block = CSWinBlock(32, 4, split).eval()
    for p in block.parameters():  # non-trivial weights, peaked attention
        p.data.normal_(0, 0.3)
    x = torch.randn(2, *size, 32)
    with torch.no_grad():
        assert_rel_close(block.attn(x), reference_attention(block.attn, x), 1e-5)


def test_stripes_are_centred_and_cross_shaped():
    """A token only reaches its vertical and horizontal stripe; 10 columns with stripes of 4 are
    padded one column each side, so the stripes are columns {0-2}, {3-6}, {7-9}."""
    torch.manual_seed(0)
    block = CSWinBlock(16, 2, 4).eval()
    for p in block.parameters():
        p.data.normal_(0, 0.3)
    x = torch.randn(1, 12, 10, 16)
    y = x.clone()
    y[0, 5, 3] += torch.randn(16)  # not a constant: LayerNorm would remove it
    with torch.no_grad():
        out = block(x)
        changed = (out - block(y)).abs().amax(-1)[0] > 1e-4 * out.abs().max()
    rows = torch.arange(12)[:, None].expand(12, 10)
    cols = torch.arange(10)[None, :].expand(12, 10)
    allowed = ((cols >= 3) & (cols <= 6)) | ((rows >= 4) & (rows <= 7))  # rows: 12 = 3 stripes
    assert changed[5, 3] and not changed[~allowed].any()
    assert changed[0, 6] and changed[4, 9] and changed[11, 3]  # far ends of both stripes


@pytest.mark.parametrize('with_cp', [False, 'act', True])
def test_with_cp_setting_reaches_the_mlps(with_cp):
    model = small_cswin(with_cp=with_cp)
    assert model.with_cp == with_cp
    mlps = [block.mlp for stage in model.stages for block in stage.blocks]
    assert mlps and all(mlp.recompute_act == (with_cp == 'act') for mlp in mlps)


def test_with_cp_act_same_gradients():
    check_with_cp_same_grads(lambda with_cp: small_cswin(with_cp='act' if with_cp else False))


def test_mlp_activation_is_recomputed_only_with_act():
    """with_cp='act' runs GELU again in backward (its output is not stored); False does not."""
    for with_cp, gelu_runs in ((False, 1), ('act', 2)):
        torch.manual_seed(0)
        block = small_cswin(with_cp=with_cp).train().stages[0].blocks[0]
        calls = []
        block.mlp.act.register_forward_hook(lambda *args: calls.append(1))
        x = torch.randn(2, 6, 6, 16, requires_grad=True)
        block(x).pow(2).sum().backward()
        assert len(calls) == gelu_runs, with_cp


@pytest.mark.numerics
@pytest.mark.parametrize('size', [(75, 101), (29, 37)])
def test_attention_implementations_agree(size):
    """attn_impl='sdpa' and 'explicit' give the same outputs and gradients (both stripe branches,
    centred padding and the global last stage)."""
    torch.manual_seed(0)
    explicit = small_cswin(drop_path_rate=0., attn_impl='explicit')
    sdpa = small_cswin(drop_path_rate=0., attn_impl='sdpa')
    sdpa.load_state_dict(explicit.state_dict())
    check_same_outputs_and_gradients(explicit, sdpa, torch.randn(2, 3, *size))


def test_attn_impl_is_checked_and_auto_picks_by_device():
    with pytest.raises(ValueError, match="CSWin: attn_impl must be one of"):
        small_cswin(attn_impl='flash')
    assert small_cswin(attn_impl='explicit').stages[2].blocks[0].attn.attn_impl == 'explicit'
    check_auto_attention_choice(cswin_module, small_cswin)


@pytest.mark.numerics
def test_padding_is_local_to_the_input():
    """Padding happens inside: an image's features do not depend on its batch-mates."""
    model = small_cswin().eval()
    x = torch.randn(1, 3, 75, 93)
    with torch.no_grad():
        a = model(x)
        b = model(torch.cat([x, torch.randn(1, 3, 75, 93)]))
    for i, (u, v) in enumerate(zip(a, b)):
        assert_rel_close(v[:1], u, 1e-5, f'level {i}')


def test_with_cp_same_gradients():
    check_with_cp_same_grads(small_cswin)


def test_frozen_stages():
    prefixes = {-1: ['patch_embed.'], **{i: [f'stages.{i}.'] for i in range(4)}}
    check_frozen_stages(small_cswin, prefixes)


def test_bad_input_and_arch():
    check_bad_inputs(small_cswin())
    with pytest.raises(ValueError, match='at least 3'):
        small_cswin()(torch.randn(1, 3, 2, 64))
    with pytest.raises(ValueError, match='unknown arch'):
        CSWin('huge')
    with pytest.raises(ValueError, match='lacks'):
        CSWin(dict(embed_dims=32))


# Our keys → the official ones: the inverse of convert_cswin_checkpoint, written out independently.
_TO_OFFICIAL = (
    (r'^patch_embed\.proj\.', lambda m: 'stage1_conv_embed.0.'),
    (r'^patch_embed\.norm\.', lambda m: 'stage1_conv_embed.2.'),
    (r'^stages\.(\d)\.blocks\.(\d+)\.attn\.lepe\.(\d)\.',
     lambda m: f'stage{int(m[1]) + 1}.{m[2]}.attns.{m[3]}.get_v.'),
    (r'^stages\.(\d)\.blocks\.(\d+)\.attn\.', lambda m: f'stage{int(m[1]) + 1}.{m[2]}.'),
    (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'stage{int(m[1]) + 1}.{m[2]}.'),
    (r'^stages\.(\d)\.downsample\.proj\.', lambda m: f'merge{int(m[1]) + 1}.conv.'),
    (r'^stages\.(\d)\.downsample\.norm\.', lambda m: f'merge{int(m[1]) + 1}.norm.'),
    (r'^stages\.(\d)\.out_norm\.', lambda m: f'norm{int(m[1]) + 1}.'),
)


def to_official(state_dict):
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in _TO_OFFICIAL:
            m = re.match(pattern, key)
            if m:
                key = repl(m) + key[m.end():]
                break
        out[key] = value.clone()
    return out


def test_converter_maps_official_keys_and_is_idempotent():
    torch.manual_seed(0)
    ours = small_cswin().state_dict()
    official = to_official(ours)
    assert {'stage1_conv_embed.0.weight', 'stage1.0.qkv.weight', 'stage1.0.attns.1.get_v.weight',
            'stage4.0.attns.0.get_v.bias', 'merge3.conv.weight', 'norm4.bias'} <= set(official)
    assert not any(k.startswith(('stages.', 'patch_embed.')) for k in official)
    converted = convert_cswin_checkpoint(official)
    assert list(converted) == list(ours)
    assert list(convert_cswin_checkpoint(converted)) == list(ours)  # our layout passes through
    extra = convert_cswin_checkpoint({'norm.weight': torch.ones(1), 'head.bias': torch.ones(1)})
    assert sorted(extra) == ['head.bias', 'norm.weight']


def test_loads_classification_release(tmp_path):
    """A timm CheckpointSaver file in official names; the loader takes 'state_dict' (not the EMA)."""
    torch.manual_seed(0)
    source = small_cswin().eval()
    cls = {k: v for k, v in to_official(source.state_dict()).items() if not re.match(r'norm\d', k)}
    cls.update({'norm.weight': torch.ones(128), 'norm.bias': torch.zeros(128),
                'head.weight': torch.zeros(1000, 128), 'head.bias': torch.zeros(1000)})
    ema = {k: torch.zeros_like(v) for k, v in cls.items()}
    path = tmp_path / 'cswin_cls.pth'
    torch.save({'epoch': 300, 'arch': 'CSWin_64_12211_tiny_224', 'state_dict': cls,
                'state_dict_ema': ema}, path)
    model = small_cswin(init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    model.init_weights()
    for key, value in source.state_dict().items():
        if 'out_norm' not in key:
            assert torch.equal(model.state_dict()[key], value), key
    missing, unexpected = model.load_pretrained(str(path))
    assert sorted(missing) == sorted(k for k in source.state_dict() if 'out_norm' in k)
    assert sorted(unexpected) == ['head.bias', 'head.weight', 'norm.bias', 'norm.weight']


def test_loads_official_dense_checkpoint(tmp_path):
    """An official UperNet file: `backbone.` + official names, beside the heads' weights."""
    torch.manual_seed(0)
    source = small_cswin().eval()
    for p in source.parameters():
        p.data.normal_(0, 0.1)
    state = {f'backbone.{k}': v for k, v in to_official(source.state_dict()).items()}
    state['decode_head.conv_seg.weight'] = torch.zeros(150, 512, 1, 1)
    path = tmp_path / 'upernet_cswin.pth'
    torch.save({'meta': {'iter': 160000}, 'state_dict': state}, path)
    model = small_cswin(init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    model.init_weights()
    x = torch.randn(1, 3, 61, 83)
    with torch.no_grad():
        for i, (a, b) in enumerate(zip(model(x), source(x))):
            assert_rel_close(a, b, 0, f'level {i}')  # the same weights: the same computation
    # The same file through a whole-model load_state_dict (what `load_from` does) converts too.
    wrapper = torch.nn.Module()
    wrapper.backbone = small_cswin().eval()
    missing, unexpected = wrapper.load_state_dict(
        {k: v for k, v in state.items() if k.startswith('backbone.')}, strict=True)
    assert not missing and not unexpected
    with torch.no_grad():
        for i, (a, b) in enumerate(zip(wrapper.backbone(x), source(x))):
            assert_rel_close(a, b, 0, f'level {i}')


def test_checkpoint_errors(tmp_path):
    model = small_cswin()
    other = {'patch_embed.projection.weight': torch.zeros(96, 3, 4, 4),
             'layers.0.blocks.0.attn.relative_position_bias_table': torch.zeros(169, 3)}
    wrong = to_official({k: torch.zeros(3, *v.shape[1:]) if k == 'patch_embed.proj.weight' else v
                         for k, v in model.state_dict().items()})
    check_checkpoint_errors(model, tmp_path, other, wrong)


def test_upernet_train_step(tmp_path):
    run_upernet_step(tmp_path, f"dict(type='CSWin', arch={SMALL_ARCH}, drop_path_rate=0.2)",
                     SMALL_CHANNELS)


def test_mask_rcnn_train_step(tmp_path):
    run_mask_rcnn_step(tmp_path, f"dict(type='CSWin', arch={SMALL_ARCH}, drop_path_rate=0.1)",
                       SMALL_CHANNELS)
