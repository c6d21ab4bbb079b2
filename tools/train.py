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
    python tools/train.py configs/mask_rcnn_swin_t_coco_1x.py --data-root /data/coco  # elsewhere
    tools/dist_train.sh CONFIG 4 --auto-scale-lr           # 4 GPUs, lr scaled from 16 to 8 images

What this adds to mmseg's / mmdet's train.py: a neck or head whose in_channels disagree with the
backbone is an error naming the config entry (before any data is read); RandomStateHook and
PlainParamGroupsHook are added when a config lacks them, so --resume continues with the
interrupted run's random state and ``compile=True`` traces the optimizer step; --amp on a
machine without CUDA is an error; distributed runs without a GPU go over gloo; ``--data-root``
moves the dataset of every dataloader and the annotation files of every evaluator at once.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Any, Iterator, List, Optional

#: The config entries that hold datasets, and those that hold evaluators (a dict or a list).
DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
EVALUATOR_KEYS = ('val_evaluator', 'test_evaluator')
DATA_ROOT_HELP = ('the dataset folder, for every dataloader (train, val, test; wrapped datasets '
                  'too) and every evaluator file under the config\'s own data root (COCO '
                  'annotation files); e.g. /data/ade/ADEChallengeData2016 or /data/coco')


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
    parser.add_argument('--data-root', metavar='DIR', help=DATA_ROOT_HELP)
    parser.add_argument('--cfg-options', nargs='+', action=_dict_action(), default={},
                        help='override config entries, key=value pairs such as '
                        'train_cfg.max_iters=100 "model.backbone.arch=small" (applied after '
                        '--data-root)')
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
                work_dir: Optional[str] = None, data_root: Optional[str] = None):
    """The config at ``path`` with ``--data-root``, then ``--cfg-options``, the launcher and the
    work dir applied (the one loader of tools/train.py, test.py, infer.py and get_flops.py).

    The work dir is ``work_dir``, else the config's own, else ``./work_dirs/<config name>``.
    """
    from mmengine.config import Config
    if not osp.isfile(path):
        raise SystemExit(f'error: config {path!r} not found')
    cfg = Config.fromfile(path)  # imports the config's custom_imports (this package's backbones)
    cfg.launcher = launcher
    if data_root is not None:
        print(f'--data-root {data_root}: ' + '; '.join(set_data_root(cfg, data_root)), flush=True)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def leaf_datasets(dataset: Any) -> Iterator[Any]:
    """The dataset configs inside ``dataset``: itself, or what its wrappers hold (RepeatDataset,
    ClassBalancedDataset and MultiImageMixDataset wrap ``dataset``; ConcatDataset ``datasets``)."""
    if not isinstance(dataset, dict):
        return
    inner = [dataset['dataset']] if 'dataset' in dataset else []
    inner += list(dataset.get('datasets') or [])
    if not inner:
        yield dataset
    for child in inner:
        yield from leaf_datasets(child)


def _under(path: str, root: str) -> Optional[str]:
    """``path`` relative to ``root`` when it lies under it (as strings: no file is read)."""
    path, root = osp.normpath(path), osp.normpath(root)
    if path == root:
        return '.'
    return path[len(root) + 1:] if path.startswith(root + os.sep) else None


def _move_paths(node: Any, old_root: str, new_root: str, where: str, moved: List[str]) -> Any:
    """``node`` with every string under ``old_root`` moved under ``new_root`` (nested dicts and
    lists walked; the entries changed appended to ``moved``)."""
    if isinstance(node, dict):
        for key in list(node):
            node[key] = _move_paths(node[key], old_root, new_root, f'{where}.{key}', moved)
    elif isinstance(node, (list, tuple)):
        return type(node)(_move_paths(item, old_root, new_root, f'{where}[{i}]', moved)
                          for i, item in enumerate(node))
    elif isinstance(node, str):
        rel = _under(node, old_root)
        if rel is not None:
            moved.append(where)
            return osp.normpath(osp.join(new_root, rel))
    return node


def set_data_root(cfg: Any, data_root: str) -> List[str]:
    """Point the config at the dataset in ``data_root`` (``--data-root`` of the tools).

    ``train_dataloader.dataset.data_root`` alone would miss the val/test loaders, datasets inside
    wrappers and the evaluators' files (mmdet's COCO bases give ``CocoMetric.ann_file`` as
    ``data_root + 'annotations/instances_val2017.json'``, one string). So: every dataset of every
    dataloader gets ``data_root``, and every evaluator path under the datasets' old root (e.g.
    ``data/coco/``) is moved under the new one. Returns what was changed (for the log).
    """
    if not osp.isdir(data_root):
        raise SystemExit(f'error: --data-root {data_root}: no such directory (give the folder that '
                         'holds the dataset, e.g. data/ade/ADEChallengeData2016 or data/coco)')
    datasets = [(key, leaf) for key in DATALOADER_KEYS if isinstance(cfg.get(key), dict)
                for leaf in leaf_datasets(cfg[key].get('dataset'))]
    if not datasets:
        raise SystemExit('error: --data-root: the config has no dataloader with a dataset '
                         f'({", ".join(DATALOADER_KEYS)})')
    old_roots = sorted({osp.normpath(leaf['data_root']) for _, leaf in datasets
                        if leaf.get('data_root')})
    if len(old_roots) > 1:
        # one --data-root cannot say where each of several datasets goes
        raise SystemExit(f'error: --data-root: the config reads datasets from {len(old_roots)} '
                         f'roots ({", ".join(old_roots)}); set each with --cfg-options '
                         '<loader>.dataset...data_root=DIR instead')
    for _, leaf in datasets:
        leaf['data_root'] = data_root
    changed = [f'data_root of {len(datasets)} dataset(s) in '
               + ', '.join(sorted({key for key, _ in datasets}, key=DATALOADER_KEYS.index))]
    if old_roots:
        moved: List[str] = []
        for key in EVALUATOR_KEYS:
            if cfg.get(key) is not None:
                cfg[key] = _move_paths(cfg[key], old_roots[0], data_root, key, moved)
        if moved:
            changed.append(', '.join(moved))
    if 'data_root' in cfg:  # the top-level variable the bases build paths from, for the dump
        cfg.data_root = data_root
    return changed


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
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir, args.data_root)
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
    ensure_hooks(cfg)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = checkpoint_uri(args.resume, '--resume')
    return cfg


def ensure_hooks(cfg) -> None:
    """Resumed runs continue with the interrupted run's torch random state (RandomStateHook), and
    ``compile`` can trace the optimizer step (PlainParamGroupsHook), whatever the config lists."""
    hooks = list(cfg.get('custom_hooks') or [])
    for name in ('RandomStateHook', 'PlainParamGroupsHook'):
        if not any(hook.get('type') == name for hook in hooks):
            hooks.append(dict(type=name))
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
