"""Helpers of the checkpoint-layout tests: randomising foreign modules, saving their weights the
way their library does, and loading a file into our backbone by each of the three routes
(``init_cfg``, a whole-model ``load_from``, ``tools/convert_checkpoint.py``)."""
from pathlib import Path
from typing import Callable, Dict, Iterable, Sequence

import torch
import torch.nn as nn
from mmengine.runner.checkpoint import load_checkpoint
from torch.nn.modules.batchnorm import _BatchNorm

from backbone_checks import rel_err
from mmvit_plugin.apis.checkpoint_conversion import convert_checkpoint
# Our keys back in the official names (which release 0.1 of ours also used), per family: the
# inverse of the renames in ``conversion.py``, kept in the package beside the comparison with the
# official code (MPViT's shared encodings stay once, as release 0.1 stored them).
from mmvit_plugin.benchmark.official import official_names  # noqa: F401

#: Largest relative error (max |a - b| / max |b| per feature map) accepted, fp32.
RTOL = 1e-4


def randomize(module: nn.Module, seed: int = 0, scale: float = 0.2) -> nn.Module:
    """Perturb every parameter and BatchNorm statistic (so that no weight is at its init), eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * scale)
        for m in module.modules():
            if isinstance(m, _BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 1.5 + 0.5)
    module.eval()
    return module


def assert_same_features(ours: Sequence[torch.Tensor], theirs: Sequence[torch.Tensor],
                         what: str, rtol: float = RTOL) -> float:
    """Every level within ``rtol`` relative; returns the largest error."""
    assert len(ours) == len(theirs), what
    errors = [rel_err(a, b) for a, b in zip(ours, theirs)]
    assert max(errors) < rtol, f'{what}: relative errors per level {errors}'
    return max(errors)


def save_safetensors(state_dict: Dict[str, torch.Tensor], path: Path) -> Path:
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    return path


class TinySegmentor(nn.Module):
    """A whole model's skeleton (``backbone`` + a head) for the ``load_from`` route: mmengine's
    ``load_checkpoint`` walks it exactly as it walks a UperNet or a Mask R-CNN."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.decode_head = nn.Conv2d(1, 1, 1)


def whole_model_file(backbone_state: Dict[str, torch.Tensor], path: Path) -> Path:
    """``{'meta', 'state_dict'}`` with the backbone under ``backbone.`` beside a head's weights."""
    head = TinySegmentor(nn.Identity()).decode_head.state_dict()
    state = {f'backbone.{k}': v for k, v in backbone_state.items()}
    state.update({f'decode_head.{k}': v for k, v in head.items()})
    torch.save({'meta': {'iter': 160000}, 'state_dict': state}, path)
    return path


def load_three_ways(build: Callable[..., nn.Module], path: Path, family: str, tmp_path: Path,
                    arch: str, whole_model: bool = True) -> nn.Module:
    """Our backbone loaded from ``path`` by ``init_cfg`` (Pretrained), by ``load_checkpoint`` of a
    whole model holding the file's weights under ``backbone.`` (what ``load_from`` runs), and from
    the file ``tools/convert_checkpoint.py`` writes (checked with ``--arch``). The three must hold
    the same tensors; the first is returned (so one set of forward passes checks all three)."""
    def seeded_build(**kwargs):  # what the file lacks (e.g. classifiers' output norms) is equal too
        torch.manual_seed(0)
        return build(**kwargs)

    models = {}
    model = seeded_build(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    models['init_cfg'] = model.eval()
    if whole_model:
        from mmvit_plugin.checkpoint import load_backbone_state_dict
        whole = whole_model_file(load_backbone_state_dict(path), tmp_path / 'whole_model.pth')
        segmentor = TinySegmentor(seeded_build())
        load_checkpoint(segmentor, str(whole), map_location='cpu', strict=False)
        models['load_from'] = segmentor.backbone.eval()
    converted = tmp_path / 'converted.pth'
    assert convert_checkpoint(family, str(path), str(converted), arch=arch) == 0
    model = seeded_build()
    model.load_state_dict(torch.load(converted, weights_only=True)['state_dict'], strict=False)
    models['convert_checkpoint.py'] = model.eval()
    reference = models['init_cfg'].state_dict()
    for route, model in models.items():
        state = model.state_dict()
        assert state.keys() == reference.keys()
        different = [k for k in state if not torch.equal(state[k], reference[k])]
        assert not different, f'{route} loaded other weights than init_cfg: {different[:5]}'
    return models['init_cfg']


def features(model: nn.Module, x: torch.Tensor) -> Iterable[torch.Tensor]:
    with torch.no_grad():
        return model(x)
