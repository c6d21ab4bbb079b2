from .checkpoint_io import AtomicLocalBackend, install as _install_checkpoint_io, load_local_checkpoint
from .distributed import setup_cpu_distributed
from .hooks import PlainParamGroupsHook, RandomStateHook
from .optim import ViTLayerDecayOptimWrapperConstructor
from .weight_loading import Fit, install as _install_weight_loading, load_purpose, load_weights

_install_checkpoint_io()
_install_weight_loading()

__all__ = ['AtomicLocalBackend', 'Fit', 'load_local_checkpoint', 'load_purpose', 'load_weights',
           'ViTLayerDecayOptimWrapperConstructor', 'PlainParamGroupsHook', 'RandomStateHook',
           'setup_cpu_distributed']
