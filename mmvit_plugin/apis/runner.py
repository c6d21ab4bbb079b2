"""Building what runs a config: mmengine's Runner (distributed over gloo on CPU when there is no
GPU), or the bare model; either way a neck or head wired for other channels than the backbone
returns is an error naming the config entry."""
import importlib
import sys
import warnings
from typing import Any

import torch.nn as nn


def require_cuda_for_amp() -> None:
    """Exit with a clear message when --amp is asked for on a machine without CUDA."""
    import torch
    if not torch.cuda.is_available():
        print('error: --amp (mixed precision with AmpOptimWrapper) needs a CUDA GPU, and none is '
              'available here (torch.cuda.is_available() is False). Run without --amp on CPU.',
              file=sys.stderr)
        sys.exit(2)


def check_channels(model: nn.Module) -> None:
    """Exit with the config entry to fix when a neck or head expects other channels than the
    backbone returns."""
    from mmvit_plugin.models import ChannelMismatchError, check_feature_channels
    while not hasattr(model, 'backbone') and hasattr(model, 'module'):
        model = model.module  # DDP and other wrappers, test-time augmentation models
    try:
        check_feature_channels(model)
    except ChannelMismatchError as e:
        raise SystemExit(f'error: config mismatch: {e}') from None


def build_runner(cfg: Any) -> Any:
    """The config's runner; distributed runs without a GPU go over gloo on CPU, and a neck or
    head configured for other channels than the backbone returns is an error naming the entry."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    import mmvit_plugin  # noqa: F401  (registers our hooks even when custom_imports is absent)
    from mmvit_plugin.engine import setup_cpu_distributed
    setup_cpu_distributed(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    check_channels(runner.model)
    return runner


def build_model(cfg: Any) -> nn.Module:
    """The config's model (mmseg or mmdet, its ``default_scope``) in eval mode, SyncBN replaced
    by BN (no process group on one device); weights as the model initialises them."""
    from mmengine.model import revert_sync_batchnorm
    scope = cfg.default_scope
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=True)
    with warnings.catch_warnings():  # mmseg's loss builders warn about deprecations
        warnings.simplefilter('ignore', UserWarning)
        model = importlib.import_module(f'{scope}.registry').MODELS.build(cfg.model)
    return revert_sync_batchnorm(model).eval()
