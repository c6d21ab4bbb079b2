"""CSWin, CvT, Swin and MPViT backbones for OpenMMLab 2.0.

Importing the package registers ``Swin``, ``CSWin``, ``CvT`` and ``MPViT`` in mmengine's root
``MODELS`` registry, which mmseg- and mmdet-scoped configs fall back to, and makes mmengine's own
checkpoints load under torch's weights-only loading (see :mod:`mmvit_plugin.engine`).
"""
from .version import __version__
from . import engine, models  # noqa: F401,E402

__all__ = ['__version__', 'engine', 'models']
