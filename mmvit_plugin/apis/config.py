"""Loading a config as the tools do: ``--data-root``, ``--cfg-options``, the work dir, checkpoint
URIs, and the switches train.py adds (``--auto-scale-lr``, ``--amp``, the hooks every run needs).
"""
import os
import os.path as osp
from typing import Any, Iterator, List, Optional, Tuple

#: The config entries that hold datasets, and those that hold evaluators (a dict or a list).
DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
EVALUATOR_KEYS = ('val_evaluator', 'test_evaluator')
#: The toolkits (a config's ``default_scope``) whose models the tools build.
SCOPES = ('mmseg', 'mmdet')


def load_config(path: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                work_dir: Optional[str] = None, data_root: Optional[str] = None):
    """The config at ``path`` with ``--data-root``, then ``--cfg-options``, the launcher and the
    work dir applied (the one loader of every tool that reads a config).

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


def check_scope(cfg: Any, path: str) -> None:
    """Exit unless the config is an mmseg segmentor or an mmdet detector."""
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise SystemExit(f'error: {path}: default_scope is {scope!r}; expected one of '
                         f'{sorted(SCOPES)} (an mmseg segmentor or mmdet detector config)')


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


def enable_amp(cfg) -> None:
    """``--amp`` for training: the config's OptimWrapper becomes an AmpOptimWrapper."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        print('AMP is already enabled in the config', flush=True)
    elif wrapper == 'OptimWrapper':
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        raise SystemExit(f'error: --amp replaces OptimWrapper by AmpOptimWrapper, but the config '
                         f'uses {wrapper}')


def ensure_hooks(cfg) -> None:
    """Resumed runs continue with the interrupted run's torch random state (RandomStateHook), and
    ``compile`` can trace the optimizer step (PlainParamGroupsHook), whatever the config lists."""
    hooks = list(cfg.get('custom_hooks') or [])
    for name in ('RandomStateHook', 'PlainParamGroupsHook'):
        if not any(hook.get('type') == name for hook in hooks):
            hooks.append(dict(type=name))
    cfg.custom_hooks = hooks
