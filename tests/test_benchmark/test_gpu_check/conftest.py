"""Fixtures of the GPU check's tests: its steps run on CPU at small widths and sizes."""
import pytest
import torch

from mmvit_plugin.benchmark.gpu_check import make_settings

#: Small widths: the steps' code paths at a fraction of the cost of the real archs.
SMALL_BACKBONES = (
    ('Swin', dict(embed_dims=16, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 4))),
    ('CSWin', dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 4))),
    ('CvT', dict(embed_dims=(16, 32, 48, 48), num_heads=(1, 2, 3, 3), depths=(1, 1, 1, 1))),
    ('MPViT', dict(embed_dims=(16, 32, 48, 48), num_layers=(1, 1, 1, 1), num_heads=(8, 8, 8, 8),
                   mlp_ratios=(2, 2, 2, 2), num_paths=(2, 2, 2, 2))),
)


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every test here on one torch thread (conftest's ``one_torch_thread``)."""


@pytest.fixture
def small_settings():
    """``small_settings(**overrides)``: ``--device cpu --quick`` settings with the small
    backbones (:data:`SMALL_BACKBONES`; ``backbones=N``: the first N) at 32x48 (memory: 32x40),
    ``overrides`` applied."""
    def settings(backbones=len(SMALL_BACKBONES), **overrides):
        result = make_settings(torch.device('cpu'), quick=True)
        result.backbones = SMALL_BACKBONES[:backbones]
        result.backbone_size = (32, 48)
        result.memory_size = (32, 40)
        for key, value in overrides.items():
            setattr(result, key, value)
        return result
    return settings
