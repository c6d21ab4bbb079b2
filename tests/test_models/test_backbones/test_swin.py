from types import SimpleNamespace

import pytest
import torch

from backbone_checks import (assert_pyramid, assert_rel_close, check_bad_inputs,
                             check_checkpoint_errors, check_frozen_stages, check_with_cp_same_grads,
                             run_mask_rcnn_step, run_upernet_step)
from checkpoint_layouts import official_names
from mmvit_plugin.models.backbones.swin import (Swin, convert_swin_checkpoint,
                                                resize_relative_position_bias_table,
                                                shift_window_mask, window_token_indices)
from mmvit_plugin.models.layers import (crop_padding, pad_to_multiple, window_partition,
                                        window_reverse)

# Parameter counts of the official dense backbone (norm0..3 instead of the classifier's norm/head),
# measured by building the official module.
OFFICIAL_PARAMS = {'tiny': 27520698, 'small': 48838602, 'base': 86745016, 'large': 194998164}


def small_swin(**kwargs):
    kwargs.setdefault('arch', dict(embed_dims=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 3, 4)))
    kwargs.setdefault('drop_path_rate', 0.1)
    return Swin(**kwargs)


@pytest.mark.parametrize('arch', sorted(OFFICIAL_PARAMS))
def test_param_counts_and_shapes(arch):
    model = Swin(arch)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[arch]
    if arch == 'tiny':
        model.eval()
        with torch.no_grad():
            assert_pyramid(model(torch.randn(1, 3, 97, 131)), 1, (97, 131), [96, 192, 384, 768])


@pytest.mark.parametrize('size', [(97, 131), (333, 517), (32, 32), (37, 29), (8, 8)])
def test_any_size(size):
    model = small_swin().eval()
    with torch.no_grad():
        assert_pyramid(model(torch.randn(2, 3, *size)), 2, size, [24, 48, 96, 192])


def test_out_indices_and_window():
    model = small_swin(out_indices=(1, 3), window_size=12).eval()
    outs = model(torch.randn(1, 3, 70, 50))
    assert [o.shape[1] for o in outs] == [48, 192]
    assert model.stages[0].out_norm is None and model.stages[3].out_norm is not None
    with pytest.raises(ValueError, match='out_indices'):
        small_swin(out_indices=(4, ))


def test_shift_mask_separates_regions():
    mask = shift_window_mask(14, 14, 7, 3)
    assert mask.shape == (4, 49, 49)
    assert (mask[0] == 0).all()  # the top-left window holds one region only
    assert (mask[3] == -100).any() and (mask.diagonal(dim1=1, dim2=2) == 0).all()


@pytest.mark.numerics
def test_batch_items_are_independent():
    """The shift mask and bias are shared across the batch: an image's features do not depend on
    the other images in its batch."""
    model = small_swin().eval()
    x = torch.randn(1, 3, 75, 101)
    with torch.no_grad():
        alone = model(x)
        batched = model(torch.cat([torch.randn(1, 3, 75, 101), x]))
    for i, (a, b) in enumerate(zip(alone, batched)):
        assert_rel_close(b[1:], a, 1e-5, f'level {i}')


def test_with_cp_same_gradients():
    check_with_cp_same_grads(small_swin)


def test_frozen_stages():
    prefixes = {-1: ['patch_embed.'], **{i: [f'stages.{i}.'] for i in range(4)}}
    check_frozen_stages(small_swin, prefixes)


def test_bad_input_and_arch():
    check_bad_inputs(small_swin())
    with pytest.raises(ValueError, match='unknown arch'):
        Swin('huge')
    with pytest.raises(ValueError, match='lacks'):
        Swin(dict(embed_dims=32))
    with pytest.raises(ValueError, match="'depths' needs 4 entries"):
        Swin(dict(embed_dims=32, depths=(2, 2, 6), num_heads=(1, 2, 4, 8)))


def _official_classification(model):
    """Our weights laid out as an official classification release: official names, derived
    buffers, final norm and head instead of the dense norm0..3."""
    sd = {k: v.clone() for k, v in model.state_dict().items() if '.out_norm.' not in k}
    for name, module in model.named_modules():
        if hasattr(module, 'relative_position_index'):
            sd[f'{name}.relative_position_index'] = module.relative_position_index.clone()
        if name.endswith('blocks.1'):
            sd[f'{name}.attn_mask'] = torch.zeros(4, 49, 49)
    sd = official_names(sd, 'swin')
    sd['norm.weight'] = torch.ones(192)
    sd['norm.bias'] = torch.zeros(192)
    sd['head.weight'] = torch.zeros(1000, 192)
    sd['head.bias'] = torch.zeros(1000)
    return {'model': sd}


def test_loads_classification_release(tmp_path):
    torch.manual_seed(0)
    source = small_swin().eval()
    path = tmp_path / 'swin_cls.pth'
    torch.save(_official_classification(source), path)
    model = small_swin(init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    model.init_weights()
    for key, value in source.state_dict().items():
        if '.out_norm.' not in key:
            assert torch.equal(model.state_dict()[key], value), key
    missing, unexpected = model.load_pretrained(str(path))
    assert sorted(missing) == sorted(k for k in source.state_dict() if '.out_norm.' in k)
    assert sorted(unexpected) == ['head.bias', 'head.weight', 'norm.bias', 'norm.weight']


def test_loads_dense_checkpoint_with_backbone_prefix(tmp_path):
    torch.manual_seed(0)
    source = small_swin().eval()
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.zeros(150, 512, 1, 1)
    path = tmp_path / 'upernet_swin.pth'
    torch.save({'meta': {'iter': 160000}, 'state_dict': state}, path)
    model = small_swin(init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    model.init_weights()
    x = torch.randn(1, 3, 61, 83)
    with torch.no_grad():
        for i, (a, b) in enumerate(zip(model(x), source(x))):
            assert_rel_close(a, b, 0, f'level {i}')  # the same weights: the same computation
    # The same file through a whole-model load_state_dict (what `load_from` does) converts too.
    wrapper = torch.nn.Module()
    wrapper.backbone = small_swin()
    wrapper.backbone.load_state_dict(source.state_dict())
    missing, unexpected = wrapper.load_state_dict(
        {k: v for k, v in state.items() if k.startswith('backbone.')}, strict=True)
    assert not missing and not unexpected


@pytest.mark.numerics
def test_window_size_change_resizes_tables(tmp_path):
    source = small_swin(window_size=7)
    path = tmp_path / 'w7.pth'
    torch.save({'model': source.state_dict()}, path)
    model = small_swin(window_size=12)
    model.load_pretrained(str(path))
    table = model.stages[0].blocks[0].attn.relative_position_bias_table
    assert table.shape == (23 * 23, 1)
    # Bicubic resizing keeps a constant table constant.
    const = torch.full((13 * 13, 3), 0.5)
    assert_rel_close(resize_relative_position_bias_table(const, 12), torch.full((23 * 23, 3), 0.5),
                     1e-5)


def test_converter_drops_derived_buffers():
    sd = {'layers.0.blocks.0.attn.relative_position_index': torch.zeros(49, 49),
          'layers.0.blocks.1.attn_mask': torch.zeros(4, 49, 49),
          'patch_embed.proj.weight': torch.zeros(96, 3, 4, 4)}
    assert list(convert_swin_checkpoint(sd)) == ['patch_embed.proj.weight']


def test_checkpoint_errors(tmp_path):
    model = small_swin()
    other = {'stage1_conv_embed.0.weight': torch.zeros(64, 3, 7, 7)}
    wrong = {k: torch.zeros(3, *v.shape[1:]) if k == 'patch_embed.proj.weight' else v
             for k, v in model.state_dict().items()}
    check_checkpoint_errors(model, tmp_path, other, wrong)


def test_upernet_train_step(tmp_path):
    run_upernet_step(tmp_path, "dict(type='Swin', arch='tiny', drop_path_rate=0.2)",
                     [96, 192, 384, 768])


def test_mask_rcnn_train_step(tmp_path):
    run_mask_rcnn_step(tmp_path, "dict(type='Swin', arch='tiny', drop_path_rate=0.1)",
                       [96, 192, 384, 768])


def _dense_reference(model, x):
    """The official dense forward written out naively (pad the normed map, roll, partition, qkv
    on every window token, explicit attention, reverse, roll back, crop), with ``model``'s weights."""
    x = model.patch_embed(x)
    w = model.window_size
    outs = []
    for i, stage in enumerate(model.stages):
        for blk in stage.blocks:
            attn, s = blk.attn, blk.shift_size
            y, pads = pad_to_multiple(blk.norm1(x), (w, w))
            Hp, Wp = y.shape[1:3]
            if s:
                y = torch.roll(y, (-s, -s), (1, 2))
            windows = window_partition(y, (w, w))
            BW, N, C = windows.shape
            heads = attn.num_heads
            q, k, v = attn.qkv(windows).reshape(BW, N, 3, heads, -1).permute(2, 0, 3, 1, 4)
            table = attn.relative_position_bias_table
            bias = table[attn.relative_position_index.view(-1)].view(N, N, -1).permute(2, 0, 1)
            scores = (q * (C // heads)**-0.5) @ k.transpose(-2, -1) + bias.unsqueeze(0)
            if s:
                mask = shift_window_mask(Hp, Wp, w, s)
                scores = scores.view(-1, mask.shape[0], heads, N, N) + mask[None, :, None]
                scores = scores.view(BW, heads, N, N)
            out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(BW, N, C)
            out = window_reverse(attn.proj(out), (w, w), Hp, Wp)
            if s:
                out = torch.roll(out, (s, s), (1, 2))
            x = x + crop_padding(out, pads)
            x = x + blk.mlp(blk.norm2(x))
        if i in model.out_indices:
            outs.append(stage.out_norm(x).permute(0, 3, 1, 2))
        if stage.downsample is not None:
            x = stage.downsample(x)
    return outs


@pytest.mark.numerics
@pytest.mark.parametrize('size', [(75, 101), (64, 64), (29, 37)])
def test_matches_naive_dense_forward_and_gradients(size):
    """The in-place scaling of q and adding of bias and mask give the values (and gradients) of
    the straightforward out-of-place computation.

    The forward is bit-identical: every output element is the same products summed in the same
    order (a row of a matmul does not depend on the other rows), whatever the kernels; so it is
    under ATEN_CPU_CAPABILITY=default, one thread and MKL_ENABLE_INSTRUCTIONS=AVX2/SSE4_2. The
    backward sums each token's contributions in another order (gathered vs windowed), so the
    gradients agree to rounding, relative to their scale (they reach 1e2)."""
    torch.manual_seed(0)
    model = small_swin(drop_path_rate=0.)
    x = torch.randn(2, 3, *size)
    model.eval()
    with torch.no_grad():
        for i, (ours, ref) in enumerate(zip(model(x), _dense_reference(model, x))):
            assert_rel_close(ours, ref, 0, f'level {i}')
    model.train()
    weights = [torch.randn(o.shape) for o in model(x)]
    loss = sum((o * w).sum() for o, w in zip(model(x), weights))
    grads = torch.autograd.grad(loss, list(model.parameters()))
    loss = sum((o * w).sum() for o, w in zip(_dense_reference(model, x), weights))
    ref_grads = torch.autograd.grad(loss, list(model.parameters()))
    for (name, _), g, r in zip(model.named_parameters(), grads, ref_grads):
        assert_rel_close(g, r, 1e-5, name)


def _official_shift_mask(height, width, window, shift):
    """The official construction: label the nine regions by slice assignment, partition, compare."""
    labels = torch.zeros(1, height, width, 1)
    count = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            labels[:, hs, ws, :] = count
            count += 1
    windows = window_partition(labels, (window, window)).squeeze(-1)
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


@pytest.mark.parametrize('height, width, window', [(14, 14, 7), (21, 35, 7), (24, 12, 12), (7, 7, 7)])
def test_shift_mask_is_the_official_one(height, width, window):
    shift = window // 2
    torch.testing.assert_close(shift_window_mask(height, width, window, shift),
                               _official_shift_mask(height, width, window, shift), rtol=0, atol=0)


@pytest.mark.numerics
@pytest.mark.parametrize('size', [(75, 101), (29, 37)])
def test_attention_implementations_agree(size):
    """attn_impl='sdpa' (the CUDA default) and 'explicit' (the CPU default) give the same outputs
    and gradients, shifted windows and padding included."""
    torch.manual_seed(0)
    explicit = small_swin(drop_path_rate=0., attn_impl='explicit')
    sdpa = small_swin(drop_path_rate=0., attn_impl='sdpa')
    sdpa.load_state_dict(explicit.state_dict())
    x = torch.randn(2, 3, *size)
    weights = None
    grads = []
    for model in (explicit, sdpa):
        outs = model(x)
        weights = weights or [torch.randn(o.shape) for o in outs]
        loss = sum((o * w).sum() for o, w in zip(outs, weights))
        grads.append((outs, torch.autograd.grad(loss, list(model.parameters()))))
    (outs_e, grads_e), (outs_s, grads_s) = grads
    for i, (a, b) in enumerate(zip(outs_e, outs_s)):
        assert_rel_close(b, a, 1e-5, f'level {i}')
    for (name, _), a, b in zip(explicit.named_parameters(), grads_e, grads_s):
        assert_rel_close(b, a, 1e-5, name)


def test_attn_impl_is_checked_and_auto_picks_by_device():
    with pytest.raises(ValueError, match="attn_impl must be one of"):
        small_swin(attn_impl='flash')
    attn = small_swin(attn_impl='auto').stages[0].blocks[0].attn
    assert not attn.uses_sdpa(torch.zeros(1, device='cpu'))
    on = lambda device: SimpleNamespace(device=torch.device(device))  # noqa: E731
    assert attn.uses_sdpa(on('cuda')) and not attn.uses_sdpa(on('cpu'))
    assert small_swin(attn_impl='sdpa').stages[0].blocks[0].attn.uses_sdpa(on('cpu'))
    assert not small_swin(attn_impl='explicit').stages[0].blocks[0].attn.uses_sdpa(on('cuda'))


@pytest.mark.parametrize('height, width, shift', [(9, 13, 0), (9, 13, 3), (7, 7, 3), (4, 5, 3), (14, 21, 3)])
def test_window_token_indices_are_pad_roll_partition_and_back(height, width, shift):
    window = 7
    tokens = torch.arange(1., height * width + 1).view(1, height, width, 1)
    padded, _ = pad_to_multiple(tokens, (window, window))  # padded positions hold 0
    expected = window_partition(torch.roll(padded, (-shift, -shift), (1, 2)), (window, window))
    source, slot = window_token_indices(height, width, window, shift)
    with_pad = torch.cat([tokens.flatten(), torch.zeros(1)])  # index height * width: a padded slot
    torch.testing.assert_close(with_pad[source], expected.flatten(), rtol=0, atol=0)
    torch.testing.assert_close(with_pad[source][slot], tokens.flatten(), rtol=0, atol=0)
