from .checkpoint_io import AtomicLocalBackend, install as _install_checkpoint_io, load_local_checkpoint

_install_checkpoint_io()

__all__ = ['AtomicLocalBackend', 'load_local_checkpoint']
