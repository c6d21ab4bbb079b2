from .base import PyramidBackbone
from .swin import Swin

__all__ = ['PyramidBackbone', 'Swin']
