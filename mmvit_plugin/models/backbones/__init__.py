from .base import PyramidBackbone
from .cvt import CvT
from .mpvit import MPViT
from .swin import Swin

__all__ = ['PyramidBackbone', 'CvT', 'MPViT', 'Swin']
