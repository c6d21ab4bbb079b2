#!/usr/bin/env python
"""Train a segmentor or a detector from an OpenMMLab 2.0 config (mmseg or mmdet alike).

A thin wrapper over ``mmengine.runner.Runner``: the registry scope comes from the config's
``default_scope`` (``mmseg`` or ``mmdet``, set by the mm ``default_runtime`` bases), and the
config's ``custom_imports`` registers this package's backbones.

Examples::

    python tools/train.py configs/upernet_cswin_t_ade20k.py --work-dir work_dirs/cswin_t
    python tools/train.py CONFIG --resume                  # latest checkpoint in the work dir
    python tools/train.py CONFIG --resume work_dirs/x/iter_8000.pth
    python tools/train.py CONFIG --cfg-options train_dataloader.batch_size=4 --amp
    tools/dist_train.sh CONFIG 8                           # 8 GPUs (torchrun)
"""
import argparse
import os
import os.path as osp
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor or detector (mmengine Runner)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: the config\'s work_dir, else ./work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto', default=None,
                        help='resume training: from PATH, or, without PATH, from the latest '
                        'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (AmpOptimWrapper); needs a CUDA GPU')
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


def load_config(args):
    """The config with the launcher, ``--cfg-options`` and work dir of the command line applied
    (shared with tools/test.py)."""
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def setup_cfg(args):
    cfg = load_config(args)
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
        if not osp.isfile(args.resume):
            raise SystemExit(f'error: --resume {args.resume}: no such checkpoint file')
        cfg.resume = True
        cfg.load_from = args.resume
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
    from mmengine.model import is_model_wrapper
    from mmvit_plugin.models import ChannelMismatchError, check_feature_channels
    try:
        check_feature_channels(model.module if is_model_wrapper(model) else model)
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
