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
moves the dataset of every dataloader and the annotation files of every evaluator at once; a
dataset that is not there is one error listing the missing paths (before anything is built).
"""
import argparse
import os
import os.path as osp
import sys
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

#: The config entries that hold datasets, and those that hold evaluators (a dict or a list).
DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
EVALUATOR_KEYS = ('val_evaluator', 'test_evaluator')
DATA_ROOT_HELP = ('the dataset folder, for every dataloader (train, val, test; wrapped datasets '
                  'too) and every evaluator file under the config\'s own data root (COCO '
                  'annotation files); e.g. /data/ade/ADEChallengeData2016 or /data/coco')
#: Where each toolkit (the config's default_scope) says how to download and lay out its datasets.
DATASET_DOCS = {
    'mmseg': "mmseg's dataset preparation guide, docs/en/user_guides/2_dataset_prepare.md in the "
             'mmsegmentation repository (https://mmsegmentation.readthedocs.io/en/latest/'
             'user_guides/2_dataset_prepare.html)',
    'mmdet': "mmdet's dataset preparation guide (https://mmdetection.readthedocs.io/en/latest/"
             'user_guides/dataset_prepare.html)',
}


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


def leaf_datasets(dataset: Any, where: str = 'dataset') -> Iterator[Tuple[str, Any]]:
    """(config entry, dataset config) of the datasets inside ``dataset``, named ``where``: itself,
    or what its wrappers hold (RepeatDataset, ClassBalancedDataset and MultiImageMixDataset wrap
    ``dataset``; ConcatDataset ``datasets``)."""
    if not isinstance(dataset, dict):
        return
    inner = [(f'{where}.dataset', dataset['dataset'])] if 'dataset' in dataset else []
    inner += [(f'{where}.datasets[{i}]', child)
              for i, child in enumerate(dataset.get('datasets') or [])]
    if not inner:
        yield where, dataset
    for child_where, child in inner:
        yield from leaf_datasets(child, child_where)


def data_stages(cfg: Any, stage: str) -> List[str]:
    """The stages whose data ``stage`` reads: a test reads 'test'; training reads 'train', and
    'val' when the config has a validation loop (mmengine builds it, all or nothing, from
    val_dataloader, val_cfg and val_evaluator)."""
    if stage == 'test':
        return ['test']
    val = all(cfg.get(f'val_{key}') is not None for key in ('dataloader', 'cfg', 'evaluator'))
    return ['train', 'val'] if val else ['train']


def missing_data(cfg: Any, stages: Sequence[str]) -> Dict[str, List[str]]:
    """The dataset paths that the dataloaders and evaluators of ``stages`` ('train', 'val',
    'test') name and that do not exist: path -> the config entries naming it.

    Paths are read as mmengine's BaseDataset joins them (``ann_file`` and each ``data_prefix``
    value under ``data_root`` unless absolute; without a data root, from the current directory);
    a missing data root is reported alone, not everything under it. Datasets of other kinds, and
    those read through a file backend (URIs, ``backend_args``), are left to their own checks.
    """
    missing: Dict[str, List[str]] = {}
    scope = cfg.get('default_scope')
    for stage in stages:
        loader = cfg.get(f'{stage}_dataloader')
        datasets = leaf_datasets(loader.get('dataset'), f'{stage}_dataloader.dataset') \
            if isinstance(loader, dict) else []
        for where, dataset in datasets:
            if _local_base_dataset(dataset, scope):
                for path, entry in _missing_dataset_paths(dataset, where):
                    missing.setdefault(path, []).append(entry)
        evaluators = cfg.get(f'{stage}_evaluator')
        evaluators = evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]
        for i, metric in enumerate(evaluators):
            where = f'{stage}_evaluator' + (f'[{i}]' if len(evaluators) > 1 else '')
            ann_file = metric.get('ann_file') if isinstance(metric, dict) else None
            if (isinstance(ann_file, str) and ann_file and not _remote(ann_file)
                    and not metric.get('backend_args') and not osp.isfile(ann_file)):
                missing.setdefault(ann_file, []).append(f'{where}.ann_file')
    return missing


def _local_base_dataset(dataset: dict, scope: Optional[str]) -> bool:
    """Whether ``dataset`` is one of mmengine's BaseDataset kind (every mmseg and mmdet dataset:
    their paths mean what ``_join_prefix`` makes of them) reading local files."""
    from mmengine.dataset import BaseDataset
    from mmengine.registry import DATASETS
    if dataset.get('backend_args') or _remote(dataset.get('data_root')):
        return False
    kind = dataset.get('type')
    if isinstance(kind, str):
        with DATASETS.switch_scope_and_registry(scope) as registry:
            kind = registry.get(kind)
    return isinstance(kind, type) and issubclass(kind, BaseDataset)


def _missing_dataset_paths(dataset: dict, where: str) -> Iterator[Tuple[str, str]]:
    """(path, config entry) of what ``dataset`` (named ``where``) reads and is not there."""
    root = dataset.get('data_root') or ''
    if root and not osp.isdir(root):
        yield root, f'{where}.data_root'
        return
    prefixes = dataset.get('data_prefix') or {}
    named = [('ann_file', dataset.get('ann_file'))] + [
        (f'data_prefix.{key}', value) for key, value in prefixes.items()]
    for key, value in named:
        if isinstance(value, str) and value and not _remote(value):
            path = osp.join(root, value)  # an absolute value stays as it is
            if not osp.exists(path):
                yield path, f'{where}.{key}'


def _remote(path: Any) -> bool:
    """Whether ``path`` is a URI (s3://, https://, ...): read through a file backend, so not
    something to look for on this machine."""
    from mmvit_plugin.checkpoint import is_uri
    return isinstance(path, str) and is_uri(path)


def missing_data_message(header: str, missing: Dict[str, List[str]],
                         scopes: Iterable[Optional[str]], hints: Sequence[str] = ()) -> str:
    """One message for all the missing paths: each with the entries naming it, then how to point
    the tools at the data, where the toolkits say how to get it, and the toy alternative."""
    relative = [path for path in missing if not osp.isabs(path)]
    lines = [f'error: {header}' + (f' (relative paths from {os.getcwd()})' if relative else '')
             + ':']
    lines += [f'  {path}   ({"; ".join(entries)})' for path, entries in missing.items()]
    lines.append('If the dataset is elsewhere, give its folder with --data-root DIR: every '
                 'dataloader and evaluator then reads from there.')
    lines += list(hints)
    docs = [DATASET_DOCS[scope] for scope in dict.fromkeys(scopes) if scope in DATASET_DOCS]
    lines.append('To download and prepare it, see '
                 + '; '.join(docs or DATASET_DOCS.values()) + '.')
    lines.append('To try the tools without a download: `make demo` trains and tests on a toy '
                 'dataset it generates.')
    return '\n'.join(lines)


def check_data(cfg: Any, stage: str) -> None:
    """Stop with one message naming every missing dataset path ``stage`` ('train' or 'test')
    reads, rather than mmengine's traceback from inside the first dataset it builds."""
    missing = missing_data(cfg, data_stages(cfg, stage))
    if missing:
        raise SystemExit(missing_data_message(
            f'{cfg.filename} reads a dataset that is not there; missing', missing,
            [cfg.get('default_scope')]))


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
                for _, leaf in leaf_datasets(cfg[key].get('dataset'))]
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
    check_data(cfg, 'train')
    runner = build_runner(cfg)
    from mmvit_plugin.checkpoint import CheckpointError
    try:
        runner.train()
    except CheckpointError as err:  # --resume / load_from / a backbone's weights did not fit
        raise SystemExit(f'error: {err}') from None
    return 0


if __name__ == '__main__':
    sys.exit(main())
