"""Small modules the ONNX export tests trace (tests/test_deploy, tests/test_tools)."""
import torch
import torch.nn as nn


class PooledHead(nn.Module):
    """A conv and UperNet-like pyramid pooling: what torch.onnx exports wrong at other sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 2, 1)
        self.pools = nn.ModuleList(nn.AdaptiveAvgPool2d(s) for s in (1, 2, 3, 6))

    def forward(self, x: torch.Tensor):
        x = self.conv(x)
        return tuple(pool(x) for pool in self.pools)


class TinyDetector(nn.Module):
    """Stands in for a built mm detector: a backbone with pooling, for the export's own logic."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = PooledHead()
        self.backbone.in_channels = 3

    def extract_feat(self, x):
        return self.backbone(x)
