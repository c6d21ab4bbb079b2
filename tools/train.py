#!/usr/bin/env python
"""Train a segmentor or a detector from an OpenMMLab 2.0 config (mmseg or mmdet alike).

A thin wrapper over ``mmengine.runner.Runner``: the registry scope comes from the config's
``default_scope`` (``mmseg`` or ``mmdet``, set by the mm ``default_runtime`` bases), and the
config's ``custom_imports`` registers this package's backbones.

Examples::

    python tools/train.py configs/upernet_cswin_t_ade20k.py --work-dir work_dirs/cswin_t
    python tools/train.py CONFIG --resume                  # latest checkpoint in the work dir
    python tools/train.py CONFIG --resume work_dirs/x/iter_8000.pth
    python tools/train.py CONFIG --resume https://host/iter_8000.pth   # any mmengine URI
    python tools/train.py CONFIG --cfg-options train_dataloader.batch_size=4 --amp
    python tools/train.py CONFIG --cfg-options model.backbone.init_cfg.checkpoint=None  # scratch
    tools/dist_train.sh CONFIG 4 --auto-scale-lr           # 4 GPUs, lr scaled from 16 to 8 images

What this adds to mmseg's / mmdet's train.py: a neck or head whose in_channels disagree with the
backbone is an error naming the config entry (before any data is read); RandomStateHook is added
when a config lacks it, so --resume continues with the interrupted run's random state; --amp on a
machine without CUDA is an error; distributed runs without a GPU go over gloo.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor or detector (mmengine Runner)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: the config\'s work_dir, else ./work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto', default=None,
                        metavar='CKPT',
                        help='resume training: from CKPT (a path, or any URI load_from takes: '
                        'https://, s3://, ...), or, without CKPT, from the latest checkpoint in '
                        'the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (AmpOptimWrapper); needs a CUDA GPU')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate linearly from the config\'s '
                        'auto_scale_lr.base_batch_size (16, the recipes\' total batch) to this '
                        'run\'s total batch (GPUs x train_dataloader.batch_size)')
    parser.add_argument('--cfg-options', nargs='+', action=_dict_action(), default={},
                        help='override config entries, key=value pairs such as '
                        'train_cfg.max_iters=100 "model.backbone.arch=small"')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (pytorch: torchrun; slurm: srun)')
    # torchrun sets LOCAL_RANK; torch.distributed.launch passes --local_rank / --local-rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _dict_action():
    from mmengine.config import DictAction
    return DictAction


def require_cuda_for_amp() -> None:
    """Exit with a clear message when --amp is asked for on a machine without CUDA."""
    import torch
    if not torch.cuda.is_available():
        print('error: --amp (mixed precision with AmpOptimWrapper) needs a CUDA GPU, and none is '
              'available here (torch.cuda.is_available() is False). Run without --amp on CPU.',
              file=sys.stderr)
        sys.exit(2)


def load_config(path: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                work_dir: Optional[str] = None):
    """The config at ``path`` with ``--cfg-options``, the launcher and the work dir applied (the
    one loader of tools/train.py, test.py, infer.py and get_flops.py).

    The work dir is ``work_dir``, else the config's own, else ``./work_dirs/<config name>``.
    """
    from mmengine.config import Config
    if not osp.isfile(path):
        raise SystemExit(f'error: config {path!r} not found')
    cfg = Config.fromfile(path)  # imports the config's custom_imports (this package's backbones)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def checkpoint_uri(uri: str, what: str) -> str:
    """``uri`` if it names a scheme (https://, s3://, ...: mmengine's CheckpointLoader reads it,
    with this package's weights-only loaders), else the local path, which must exist."""
    from mmvit_plugin.checkpoint import is_uri
    if is_uri(uri):
        return uri
    path = osp.expanduser(uri)
    if not osp.isfile(path):
        raise SystemExit(f'error: {what} {uri}: no such checkpoint file (give a local file or a '
                         'URI such as https://...)')
    return path


def enable_auto_scale_lr(cfg) -> None:
    """``--auto-scale-lr``, as mmdet's train.py: the config must say the batch its lr is for."""
    scale = cfg.get('auto_scale_lr')
    if not scale or 'enable' not in scale or 'base_batch_size' not in scale:
        raise SystemExit('error: --auto-scale-lr needs auto_scale_lr = dict(enable=False, '
                         'base_batch_size=N) in the config, N the total batch its learning rate '
                         'is for (16 in the recipes here)')
    scale.enable = True


def setup_cfg(args):
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg)
    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print('AMP is already enabled in the config', flush=True)
        elif wrapper == 'OptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        else:
            raise SystemExit(f'error: --amp replaces OptimWrapper by AmpOptimWrapper, but the config '
                             f'uses {wrapper}')
    ensure_random_state_hook(cfg)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = checkpoint_uri(args.resume, '--resume')
    return cfg


def ensure_random_state_hook(cfg) -> None:
    """Resumed runs continue with the interrupted run's torch random state (RandomStateHook)."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(hook.get('type') == 'RandomStateHook' for hook in hooks):
        hooks.append(dict(type='RandomStateHook'))
    cfg.custom_hooks = hooks


def check_channels(model) -> None:
    """Exit with the config entry to fix when a neck or head expects other channels than the
    backbone returns (shared with tools/test.py and tools/infer.py)."""
    from mmvit_plugin.models import ChannelMismatchError, check_feature_channels
    while not hasattr(model, 'backbone') and hasattr(model, 'module'):
        model = model.module  # DDP and other wrappers, test-time augmentation models
    try:
        check_feature_channels(model)
    except ChannelMismatchError as e:
        raise SystemExit(f'error: config mismatch: {e}') from None


def build_runner(cfg):
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


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.amp:
        require_cuda_for_amp()
    cfg = setup_cfg(args)
    runner = build_runner(cfg)
    runner.train()
    return 0


if __name__ == '__main__':
    sys.exit(main())
