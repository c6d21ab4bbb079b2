from .checkpoint_io import AtomicLocalBackend, install as _install_checkpoint_io, load_local_checkpoint
from .distributed import setup_cpu_distributed
from .fsdp import FSDPOptimWrapper, install as _install_fsdp, mmvit_block_wrap_policy
from .hooks import PlainParamGroupsHook, RandomStateHook
from .optim import ViTLayerDecayOptimWrapperConstructor
from .weight_loading import Fit, install as _install_weight_loading, load_purpose, load_weights

_install_checkpoint_io()
_install_weight_loading()
_install_fsdp()

__all__ = ['AtomicLocalBackend', 'Fit', 'load_local_checkpoint', 'load_purpose', 'load_weights',
           'mmvit_block_wrap_policy', 'FSDPOptimWrapper', 'ViTLayerDecayOptimWrapperConstructor',
           'PlainParamGroupsHook', 'RandomStateHook', 'setup_cpu_distributed']
