"""Building what runs a config: mmengine's Runner, or its FlexibleRunner when the config sets
``runner_type='FlexibleRunner'`` (FSDP, DeepSpeed; distributed over gloo on CPU when there is no
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
    from mmvit_plugin.engine.fsdp import is_fsdp_config
    if is_fsdp_config(cfg) and cfg.get('launcher', 'none') == 'none':
        raise SystemExit(
            'error: this config trains with FlexibleRunner and FSDPStrategy, which shards the '
            'model over a torch.distributed process group: start it with a launcher, e.g. '
            'tools/dist_train.sh CONFIG NUM_GPUS (1 works too), or tools/train.py CONFIG '
            '--launcher pytorch under torchrun. To run without FSDP, use the config it inherits '
            '(the same name without _fsdp).')
    setup_cpu_distributed(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    if isinstance(runner.model, nn.Module):
        check_channels(runner.model)
    else:  # FlexibleRunner builds the model when it runs: check it then, before any wrapping
        build = runner.strategy.build_model

        def build_and_check(model: Any) -> nn.Module:
            model = build(model)
            check_channels(model)
            return model
        runner.strategy.build_model = build_and_check
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
