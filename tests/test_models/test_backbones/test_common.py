"""Behaviour every backbone shares: bf16 autocast, tiny inputs, registry and layer depths."""
import pytest
import torch
from mmengine.registry import MODELS

import mmvit_plugin  # noqa: F401

SMALL = {
    'Swin': dict(arch=dict(embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4))),
    'CSWin': dict(arch=dict(embed_dims=16, depths=(1, 1, 2, 1), num_heads=(2, 2, 4, 4))),
    'CvT': dict(arch=dict(embed_dims=(16, 32, 48, 48), num_heads=(1, 2, 3, 3),
                          depths=(1, 1, 2, 1))),
    'MPViT': dict(arch='tiny'),
}


def build(name, **kwargs):
    return MODELS.build(dict(type=name, **SMALL[name], **kwargs))


@pytest.mark.parametrize('name', sorted(SMALL))
def test_bf16_autocast_gives_finite_outputs_and_gradients(name):
    torch.manual_seed(0)
    model = build(name).train()
    x = torch.randn(2, 3, 67, 91)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    assert len(outs) == 4
    assert all(torch.isfinite(o.float()).all() for o in outs)
    sum(o.float().mean() for o in outs).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize('name', sorted(SMALL))
def test_tiny_image_at_test_time(name):
    model = build(name).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 8, 8))
    assert len(outs) == 4 and all(o.shape[-2:] >= (1, 1) for o in outs)
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('name', sorted(SMALL))
def test_layer_depths_cover_every_parameter(name):
    model = build(name)
    depths = [model.get_layer_depth(n) for n, _ in model.named_parameters()]
    num = depths[0][1]
    assert all(d[1] == num for d in depths)
    values = sorted({d[0] for d in depths})
    assert values[0] == 0 and values[-1] <= num - 1
    # every block depth 1..num-2 is used by some parameter
    assert set(range(1, num - 1)) <= set(values)


# Each with one stage whose channels do not split into its heads.
UNEVEN_HEADS = {
    'Swin': (dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(3, 2, 2, 4)), '16 channels', '3 heads'),
    'CSWin': (dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 6, 4)), '64 channels', '6 heads'),
    'CvT': (dict(embed_dims=(16, 32, 48, 48), num_heads=(1, 2, 5, 3), depths=(1, 1, 1, 1)),
            '48 channels', '5 heads'),
    'MPViT': (dict(embed_dims=(64, 96, 172, 216), num_layers=(1, 1, 1, 1), num_heads=(8, 8, 8, 8),
                   mlp_ratios=(2, 2, 2, 2), num_paths=(2, 2, 2, 2)), '172 channels', '8 heads'),
}


@pytest.mark.parametrize('name', sorted(UNEVEN_HEADS))
def test_channels_that_do_not_split_into_heads(name):
    arch, channels, heads = UNEVEN_HEADS[name]
    with pytest.raises(ValueError, match=f'{name}: {channels} do not split into {heads}'):
        MODELS.build(dict(type=name, arch=arch))


@pytest.mark.parametrize('name', sorted(SMALL))
@pytest.mark.parametrize('with_cp', [False, 'act', True])
def test_with_cp_reaches_every_mlp_once_built(name, with_cp):
    """The base applies ``with_cp`` after the subclass has built its layers (no backbone sets it
    a second time itself)."""
    from mmvit_plugin.models.layers import Mlp
    model = build(name, with_cp=with_cp)
    mlps = [m for m in model.modules() if isinstance(m, Mlp)]
    assert model.with_cp == with_cp
    assert mlps and all(mlp.recompute_act == (with_cp == 'act') for mlp in mlps)


@pytest.mark.parametrize('name', sorted(SMALL))
def test_builds_on_the_meta_device(name):
    with torch.device('meta'):
        model = build(name, drop_path_rate=0.2)
    assert all(p.is_meta for p in model.parameters())
