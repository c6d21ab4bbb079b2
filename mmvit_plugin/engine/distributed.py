"""Distributed training and testing on machines without a GPU.

mmengine 0.10.7 always calls ``torch.cuda.set_device`` when it sets up a ``pytorch`` launcher, and
wraps the model in DDP with ``device_ids=[LOCAL_RANK]``; both fail without a GPU. When no GPU is
present, :func:`setup_cpu_distributed` starts the process group itself with the gloo backend
(mmengine then skips its own set-up) and wraps the model for CPU.
"""
import atexit
from datetime import timedelta

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log


def setup_cpu_distributed(cfg: Config) -> bool:
    """Prepare ``cfg`` (and the process group) for a distributed run on CPU.

    Does nothing, and returns False, for single-process runs (``cfg.launcher == 'none'``) and when
    CUDA is available. Otherwise initialises torch.distributed with gloo from the ``torchrun``
    environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), makes the DDP wrapper (and a
    FlexibleRunner's FSDP or DDP strategy) CPU-friendly and returns True.

    Raises:
        RuntimeError: for launchers other than ``pytorch`` without a GPU.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise RuntimeError(f'launcher={launcher!r} needs CUDA GPUs; without a GPU, run distributed '
                           'on CPU with the pytorch launcher (tools/dist_train.sh / torchrun), '
                           'which uses the gloo backend')
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'gloo') != 'gloo':
        print_log(f'no CUDA GPU: distributed backend {dist_cfg["backend"]} -> gloo', logger='current')
    dist_cfg['backend'] = 'gloo'
    if not dist.is_initialized():
        timeout = dist_cfg.get('timeout')
        kwargs = {} if timeout is None else dict(timeout=timedelta(seconds=timeout))
        dist.init_process_group(backend='gloo', **kwargs)
        # Left to interpreter shutdown, gloo's worker threads can outlive Python and abort the
        # process (SIGABRT, "terminate called without an active exception"; seen once in
        # tools/dist_test.sh after the metrics were printed): end the group while Python runs.
        atexit.register(destroy_process_group)

    from .fsdp import cpu_strategy
    cpu_strategy(cfg)  # FlexibleRunner's strategies: FSDP / DDP on CPU
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None  # CPU modules take no device ids
    cfg.model_wrapper_cfg = wrapper
    return True


def destroy_process_group() -> None:
    """End the default process group if one is still running (an ``atexit`` handler)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
