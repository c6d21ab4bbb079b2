"""Checks every backbone's tests run: pyramid shapes, with_cp, frozen stages, bad input, and a
training step of UperNet (mmseg) and Mask R-CNN (mmdet) built from mm configs; and the suite's one
numerical comparison, :func:`assert_rel_close`."""
import math
import textwrap
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pytest
import torch
import torch.nn as nn

from mmvit_plugin.checkpoint import CheckpointError
from mmvit_plugin.numerics import relative_error
from mmvit_plugin.testing import random_det_batch, random_seg_batch


#: One small arch per backbone (one block a stage), for the export and compile checks.
SMALL_ARCHS = {
    'Swin': dict(arch=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4))),
    'CSWin': dict(arch=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 4))),
    'CvT': dict(arch=dict(embed_dims=(16, 32, 48, 48), num_heads=(1, 2, 3, 3), depths=(1, 1, 1, 1))),
    'MPViT': dict(arch=dict(embed_dims=(16, 24, 32, 40), num_layers=(1, 1, 1, 1), num_heads=8,
                            mlp_ratios=2, num_paths=(2, 2, 2, 2))),
}


def rel_err(actual: torch.Tensor, expected: torch.Tensor, scale: Optional[float] = None) -> float:
    """:func:`mmvit_plugin.numerics.relative_error` (``max|actual - expected| / scale``, ``scale``
    by default ``max|expected|``, in float64), with the shapes asserted equal.

    Rounding differences between machines (another ISA's kernels, another thread count: another
    summation order) are a fraction of the magnitudes summed, so a tolerance only means the same
    thing on every machine relative to the values' scale; a bare atol fails wherever values are
    large (gradients reach 1e2) and is vacuous where they are small."""
    assert actual.shape == expected.shape, (tuple(actual.shape), tuple(expected.shape))
    return relative_error(actual, expected, 'max', scale)


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str = '',
                     scale: Optional[float] = None) -> None:
    """Every element of ``actual`` within ``tol * scale`` of ``expected`` (see :func:`rel_err`);
    ``tol=0``: identical."""
    err = rel_err(actual, expected, scale)
    assert err <= tol, f'{what}: max |error| is {err:.3g} of the reference scale (tolerance {tol:g})'


def assert_pyramid(outs: Sequence[torch.Tensor], batch: int, size: Tuple[int, int],
                   channels: Sequence[int], level_sizes: Sequence[Tuple[int, int]] = None) -> None:
    """Four NCHW levels, given channels; sizes as given, else ceil(H / 4·2^i)."""
    assert isinstance(outs, tuple) and len(outs) == len(channels)
    H, W = size
    for i, (out, c) in enumerate(zip(outs, channels)):
        expected = level_sizes[i] if level_sizes else (math.ceil(H / 4 / 2**i), math.ceil(W / 4 / 2**i))
        assert out.shape == (batch, c, *expected), f'level {i}: {tuple(out.shape)}'
        assert torch.isfinite(out).all()


def check_with_cp_same_grads(build: Callable[..., nn.Module], size=(45, 61)) -> None:
    """Gradient checkpointing recomputes the same function: the same ops on the same values, so
    the gradients are identical (on any CPU: both runs use the same kernels)."""
    torch.manual_seed(0)
    plain = build(with_cp=False)
    ckpt = build(with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    plain.train(), ckpt.train()
    x = torch.randn(2, 3, *size)
    grads = []
    for model in (plain, ckpt):
        torch.manual_seed(1)  # same drop-path draws
        loss = sum((o.float()**2).mean() for o in model(x))
        model.zero_grad()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        assert_rel_close(grads[1][name], grads[0][name], 0, name)


def check_frozen_stages(build: Callable[..., nn.Module], stage_prefixes: Dict[int, List[str]]) -> None:
    """frozen_stages=k freezes the stem and stages 0..k-1 (no grads, eval mode), nothing else.

    ``stage_prefixes[-1]`` names the stem's parameter prefixes, ``stage_prefixes[i]`` stage i's.
    """
    for frozen in (-1, 0, 1, 3):
        model = build(frozen_stages=frozen)
        model.train()
        frozen_prefixes = [p for s in range(-1, frozen) for p in stage_prefixes[s]]
        live_prefixes = [p for s in range(frozen, 4) for p in stage_prefixes[s]]
        for name, param in model.named_parameters():
            if any(name.startswith(p) for p in frozen_prefixes):
                assert not param.requires_grad, f'frozen_stages={frozen}: {name} trains'
            elif any(name.startswith(p) for p in live_prefixes):
                assert param.requires_grad, f'frozen_stages={frozen}: {name} frozen'
        for s in range(-1, frozen):
            for mod in model.stage_modules(s):
                assert not mod.training
        outs = model(torch.randn(1, 3, 64, 64))
        if frozen >= 0:
            loss = sum(o.sum() for o in outs)
            loss.backward()
            for name, param in model.named_parameters():
                if any(name.startswith(p) for p in frozen_prefixes):
                    assert param.grad is None, name


def check_bad_inputs(model: nn.Module) -> None:
    """Clear errors for wrong channels, a 3-D tensor and an integer tensor."""
    with pytest.raises(ValueError, match='input channels'):
        model(torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError, match='4-D'):
        model(torch.randn(3, 64, 64))
    with pytest.raises(TypeError, match='floating-point'):
        model(torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8))


def check_checkpoint_errors(model, tmp_path, other_backbone_state: Dict[str, torch.Tensor],
                            wrong_shape_state: Dict[str, torch.Tensor]) -> None:
    """Missing file, truncated file, another backbone's weights and wrong-shaped weights."""
    with pytest.raises(CheckpointError, match='not found'):
        model.load_pretrained(str(tmp_path / 'nope.pth'))
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': model.state_dict()}, good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupted'):
        model.load_pretrained(str(truncated))
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': other_backbone_state}, other)
    with pytest.raises(CheckpointError, match='another backbone'):
        model.load_pretrained(str(other))
    # One tensor of another shape (a stem for other input channels, made on purpose): the rest
    # loads, that tensor stays at its init and is named, as the training-start rule says.
    wrong = tmp_path / 'wrong.pth'
    torch.save(wrong_shape_state, wrong)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    missing, _ = model.load_pretrained(str(wrong))
    assert len(missing) == 1, missing
    assert torch.equal(model.state_dict()[missing[0]], before[missing[0]])


def _write_config(tmp_path, text: str) -> str:
    path = tmp_path / 'cfg.py'
    path.write_text(textwrap.dedent(text))
    return str(path)


def _assert_backbone_trains(model: nn.Module, losses: Dict[str, torch.Tensor]) -> None:
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss), losses
    loss.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads), 'some backbone parameters got no gradient'
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def run_upernet_step(tmp_path, backbone: str, in_channels: Sequence[int], size=(64, 64)) -> None:
    """Build UperNet from an mmseg-scoped config with ``custom_imports`` and train one step on CPU.

    ``backbone`` is the text of the ``backbone=dict(...)`` value.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    cfg = Config.fromfile(_write_config(tmp_path, f"""
        _base_ = ['mmseg::_base_/models/upernet_swin.py']
        custom_imports = dict(imports=['mmvit_plugin'], allow_failed_imports=False)
        norm_cfg = dict(type='BN', requires_grad=True)
        model = dict(
            data_preprocessor=dict(size={size}),
            pretrained=None,
            backbone=dict(_delete_=True, **{backbone}),
            decode_head=dict(in_channels={list(in_channels)}, channels=32, num_classes=5,
                             norm_cfg=norm_cfg),
            auxiliary_head=dict(in_channels={in_channels[2]}, channels=16, num_classes=5,
                                norm_cfg=norm_cfg))
        """))
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    torch.manual_seed(0)
    data = model.data_preprocessor(random_seg_batch(size, batch=2, num_classes=5), True)
    _assert_backbone_trains(model, model(**data, mode='loss'))


def run_mask_rcnn_step(tmp_path, backbone: str, in_channels: Sequence[int], size=(128, 128)) -> None:
    """Build Mask R-CNN from an mmdet-scoped config with ``custom_imports``; one CPU training step."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS

    cfg = Config.fromfile(_write_config(tmp_path, f"""
        _base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']
        custom_imports = dict(imports=['mmvit_plugin'], allow_failed_imports=False)
        model = dict(
            backbone=dict(_delete_=True, **{backbone}),
            neck=dict(in_channels={list(in_channels)}))
        """))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    torch.manual_seed(0)
    batch = random_det_batch(size, batch=2, num_classes=cfg.model.roi_head.bbox_head.num_classes,
                             num_boxes=2)
    data = model.data_preprocessor(batch, True)
    _assert_backbone_trains(model, model(**data, mode='loss'))
