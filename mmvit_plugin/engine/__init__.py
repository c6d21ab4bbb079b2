from .checkpoint_io import AtomicLocalBackend, install as _install_checkpoint_io, load_local_checkpoint
from .distributed import setup_cpu_distributed
from .hooks import PlainParamGroupsHook, RandomStateHook
from .optim import ViTLayerDecayOptimWrapperConstructor

_install_checkpoint_io()

__all__ = ['AtomicLocalBackend', 'load_local_checkpoint', 'ViTLayerDecayOptimWrapperConstructor',
           'PlainParamGroupsHook', 'RandomStateHook', 'setup_cpu_distributed']
