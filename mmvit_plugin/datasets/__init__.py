"""Datasets for the detection configs. Imports mmdet, so it is not imported by ``mmvit_plugin``
itself; the Mask R-CNN configs list it in ``custom_imports``."""
from .coco import ReportingCocoDataset

__all__ = ['ReportingCocoDataset']
