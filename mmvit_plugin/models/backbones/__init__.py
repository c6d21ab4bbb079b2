from .base import PyramidBackbone
from .cswin import CSWin
from .cvt import CvT
from .mpvit import MPViT
from .swin import Swin

__all__ = ['PyramidBackbone', 'CSWin', 'CvT', 'MPViT', 'Swin']
