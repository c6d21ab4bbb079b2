"""The data check: before anything is built, every dataset path a run reads is looked for, and
what is missing is one message naming each path, the config entries naming it, ``--data-root``,
where mmseg / mmdet say how to get the dataset, and ``make demo``."""
import os
import os.path as osp
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .config import leaf_datasets

#: Where each toolkit (the config's default_scope) says how to download and lay out its datasets.
DATASET_DOCS = {
    'mmseg': "mmseg's dataset preparation guide, docs/en/user_guides/2_dataset_prepare.md in the "
             'mmsegmentation repository (https://mmsegmentation.readthedocs.io/en/latest/'
             'user_guides/2_dataset_prepare.html)',
    'mmdet': "mmdet's dataset preparation guide (https://mmdetection.readthedocs.io/en/latest/"
             'user_guides/dataset_prepare.html)',
}


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
