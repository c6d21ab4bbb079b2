"""The model zoo: ``configs/metafile.yaml`` (OpenMMLab's metafile layout) read and checked, and
the checkpoint file names each config answers to.

The metafile is the one name map: a config's checkpoints are the file names of the official
whole-model releases its published results list (``Checkpoint:`` URLs, e.g.
``upernet_cswin_tiny.pth``; their figures are the reference for that file) and ``<config
stem>.pth`` (one trained here; referenced against the config's first published result).
Releases in a layout this package cannot load (MPViT's Detectron2 detectors) are skipped with a
note. It is also where docs/configs.md's tables come from (:mod:`.zoo_docs`); the benchmark
against it: :mod:`.zoo_benchmark`.
"""
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import REPO_ROOT

REPO = REPO_ROOT
TOOLS = REPO / 'tools'
DEFAULT_METAFILE = REPO / 'configs' / 'metafile.yaml'
#: Checkpoint layouts this package reads as whole models (a release without ``Checkpoint
#: Format`` is one of them: mmseg 0.x/1.x, mmdet 2.x/3.x, official Swin/CSWin/MPViT mmseg files).
LOADABLE_FORMATS = (None, )


@dataclass(frozen=True)
class Metric:
    """A published metric name (the metafile's, as OpenMMLab's) and where tools/test.py's
    ``--metrics-out`` has it: ``key`` times ``scale`` is the published unit (points)."""
    label: str
    key: str
    scale: float
    tta: bool


METRICS = (
    Metric('mIoU', 'mIoU', 1.0, False),  # mmseg's IoUMetric reports percent already
    Metric('mIoU(ms+flip)', 'mIoU', 1.0, True),
    Metric('box AP', 'coco/bbox_mAP', 100.0, False),  # mmdet's CocoMetric reports fractions
    Metric('mask AP', 'coco/segm_mAP', 100.0, False),
    Metric('box AP(TTA)', 'coco/bbox_mAP', 100.0, True),
    Metric('PQ', 'coco_panoptic/PQ', 1.0, False),  # mmdet's CocoPanopticMetric reports percent
)
METRIC_BY_LABEL = {m.label: m for m in METRICS}


class ZooError(ValueError):
    """A metafile that cannot be used (the message names the file, the entry and the fix)."""


@dataclass
class Release:
    """Published figures from one source, and the whole-model checkpoint they belong to (if any)."""
    metrics: Dict[str, float]
    source: str
    checkpoint: Optional[str] = None  # URL of the released whole model
    checkpoint_format: Optional[str] = None  # None: a layout this package loads

    @property
    def file_name(self) -> Optional[str]:
        return self.checkpoint.rsplit('/', 1)[-1] if self.checkpoint else None

    @property
    def loadable(self) -> bool:
        return self.checkpoint_format in LOADABLE_FORMATS


@dataclass
class ZooModel:
    """One entry of the metafile: a config, its published results and measured complexity."""
    name: str
    config: Path
    collection: str
    backbone: str
    releases: List[Release]
    metadata: Dict[str, Any] = field(default_factory=dict)
    complexity: Optional[Dict[str, Any]] = None  # the published parameters / FLOPs
    note: Optional[str] = None

    @property
    def stem(self) -> str:
        return self.config.stem

    @property
    def own_checkpoint(self) -> str:
        """The file name of a checkpoint trained here: ``<config stem>.pth``."""
        return f'{self.stem}.pth'

    def published(self, label: str, release: Optional[Release] = None) -> Optional[Release]:
        """The published result to compare ``label`` with: the given release's own figure, else
        the first listed one (the metafile lists the config's own recipe first)."""
        ordered = ([release] if release is not None else []) + self.releases
        return next((r for r in ordered if label in r.metrics), None)


@dataclass
class Zoo:
    """A metafile: where it is, its sources (key -> Title, URL) and its models."""
    path: Path
    sources: Dict[str, Dict[str, str]]
    models: List[ZooModel]

    def checkpoint_map(self) -> Dict[str, Tuple[ZooModel, Optional[Release]]]:
        """File name -> (model, release); release None for ``<config stem>.pth``."""
        names: Dict[str, Tuple[ZooModel, Optional[Release]]] = {}
        for model in self.models:
            entries = [(model.own_checkpoint, None)] + [
                (r.file_name, r) for r in model.releases if r.file_name]
            for name, release in entries:
                other = names.get(name)
                if other is not None and other[0] is not model:
                    raise ZooError(f'{self.path}: checkpoint file name {name} belongs to both '
                                   f'{other[0].name} and {model.name}; file names must say which '
                                   'config they are for')
                if other is None or (other[1] is None and release is not None):
                    names[name] = (model, release)
        return names

    def source_title(self, key: str) -> str:
        return self.sources[key]['Title']

    def source_link(self, key: str) -> str:
        source = self.sources[key]
        return f'[{source["Title"]}]({source["URL"]})'


def _fail(path: Path, where: str, problem: str) -> ZooError:
    return ZooError(f'{path}: {where}: {problem}')


def load_zoo(path: Path = DEFAULT_METAFILE) -> Zoo:
    """Read and check a metafile (OpenMMLab's ``Models`` / ``Results`` / ``Metrics`` layout with
    this package's ``Sources``, ``Source``, ``Checkpoint``, ``Published Complexity`` fields).
    Config paths are relative to the repository root (or absolute)."""
    import yaml
    path = Path(path)
    if not path.is_file():
        raise ZooError(f'metafile {path} not found (the default is {DEFAULT_METAFILE}; '
                       '--metafile FILE takes another)')
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ZooError(f'{path}: not valid YAML: {e}') from None
    if not isinstance(doc, dict) or not isinstance(doc.get('Models'), list):
        raise ZooError(f'{path}: expected a mapping with a `Models:` list (OpenMMLab metafile)')
    sources = doc.get('Sources') or {}
    models: List[ZooModel] = []
    seen: Dict[str, str] = {}
    for i, entry in enumerate(doc['Models']):
        where = f'Models[{i}]'
        if not isinstance(entry, dict) or not entry.get('Name') or not entry.get('Config'):
            raise _fail(path, where, 'every model needs `Name:` and `Config:`')
        where = f'model {entry["Name"]}'
        config = Path(entry['Config'])
        config = config if config.is_absolute() else REPO / config
        if not config.is_file():
            raise _fail(path, where, f'Config {entry["Config"]} does not exist (paths are '
                        f'relative to the repository root, {REPO})')
        for key in (entry['Name'], str(config)):
            if key in seen:
                raise _fail(path, where, f'{key} is listed twice (also in {seen[key]})')
            seen[key] = where
        releases = _releases(path, where, entry.get('Results') or [], sources)
        complexity = entry.get('Published Complexity')
        if complexity and complexity.get('Source') not in sources:
            raise _fail(path, where, f'Published Complexity.Source {complexity.get("Source")!r} '
                        f'is not one of Sources: {sorted(sources)}')
        metadata = dict(entry.get('Metadata') or {})
        models.append(ZooModel(
            name=entry['Name'], config=config, collection=entry.get('In Collection', ''),
            backbone=metadata.get('Backbone', ''), releases=releases, metadata=metadata,
            complexity=complexity, note=entry.get('Note')))
    zoo = Zoo(path=path, sources=sources, models=models)
    zoo.checkpoint_map()  # raises on a file name claimed by two configs
    return zoo


def _releases(path: Path, where: str, results: List[Any],
              sources: Dict[str, Any]) -> List[Release]:
    """The ``Results`` entries grouped by (Source, Checkpoint): mmdet's convention lists box AP
    and mask AP as two results of one release."""
    releases: Dict[Tuple[str, Optional[str]], Release] = {}
    for j, result in enumerate(results):
        here = f'{where}, Results[{j}]'
        metrics = result.get('Metrics') if isinstance(result, dict) else None
        if not metrics or not isinstance(metrics, dict):
            raise _fail(path, here, 'needs `Metrics:` (e.g. mIoU: 44.5)')
        for label, value in metrics.items():
            if label not in METRIC_BY_LABEL:
                raise _fail(path, here, f'unknown metric {label!r}; known: '
                            f'{", ".join(METRIC_BY_LABEL)}')
            if not isinstance(value, (int, float)):
                raise _fail(path, here, f'{label} must be a number, not {value!r}')
        source = result.get('Source')
        if source not in sources:
            raise _fail(path, here, f'Source {source!r} is not one of Sources: {sorted(sources)}')
        key = (source, result.get('Checkpoint'))
        release = releases.setdefault(key, Release(
            metrics={}, source=source, checkpoint=result.get('Checkpoint'),
            checkpoint_format=result.get('Checkpoint Format')))
        release.metrics.update({k: float(v) for k, v in metrics.items()})
    return list(releases.values())


@dataclass
class Found:
    """A checkpoint found for a model, with the release it is (None: one trained here)."""
    path: Path
    release: Optional[Release]


def select(zoo: Zoo, patterns: Optional[Sequence[str]]) -> List[ZooModel]:
    """The models whose name, config stem or config path matches one of the glob ``patterns``."""
    if not patterns:
        return list(zoo.models)
    chosen = [m for m in zoo.models if any(
        fnmatch.fnmatch(m.name, p) or fnmatch.fnmatch(m.stem, p) or fnmatch.fnmatch(
            str(m.config), p) or fnmatch.fnmatch(shown_path(m.config), p) for p in patterns)]
    if not chosen:
        raise SystemExit(f'error: --configs {" ".join(patterns)}: no config of {zoo.path} matches '
                         '(patterns are globs on config names, e.g. \'upernet_*\'; --list shows '
                         'them)')
    return chosen


def find_checkpoints(model: ZooModel, directory: Path) -> Tuple[List[Found], List[str], List[str]]:
    """(checkpoints to test, notes on files found but not testable, file names looked for)."""
    found: List[Found] = []
    notes: List[str] = []
    looked = [r.file_name for r in model.releases if r.file_name] + [model.own_checkpoint]
    seen = set()
    for release in [r for r in model.releases if r.file_name] + [None]:
        name = release.file_name if release else model.own_checkpoint
        if name in seen or not (directory / name).is_file():
            continue
        seen.add(name)
        if release is not None and not release.loadable:
            notes.append(f'{name}: a {release.checkpoint_format} checkpoint '
                         f'({release.source}); this package does not load that layout')
            continue
        found.append(Found(directory / name, release))
    return found, notes, list(dict.fromkeys(looked))


def shown_path(path: Path) -> str:
    """A config path as the user typed it from the repository root, when it lies there."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def format_number(value: Optional[float], signed: bool = False, digits: int = 2) -> str:
    if value is None:
        return '–'
    return f'{value:+.{digits}f}' if signed else f'{value:.{digits}f}'


def published_digits(value: Optional[float]) -> int:
    """As many decimals as the source gives (44.51, 49.3, 42.7)."""
    if value is None:
        return 1
    text = f'{value:.4f}'.rstrip('0')
    return max(1, len(text.split('.')[1]))


def print_map(zoo: Zoo) -> None:
    for name, (model, release) in sorted(zoo.checkpoint_map().items(),
                                         key=lambda item: item[1][0].name):
        kind = 'trained here' if release is None else (
            f'released ({zoo.source_title(release.source)})'
            + ('' if release.loadable else f'; {release.checkpoint_format}, not loadable here'))
        print(f'{model.name:<40} {name:<72} {kind}')


def load_or_exit(path: Path = DEFAULT_METAFILE) -> Zoo:
    """:func:`load_zoo`, a metafile that cannot be used an ``error:`` exit naming the problem."""
    try:
        return load_zoo(path)
    except ZooError as e:
        raise SystemExit(f'error: {e}') from None


def list_checkpoints(metafile: Path = DEFAULT_METAFILE) -> int:
    """Print which checkpoint file names each config answers to (``--list``)."""
    print_map(load_or_exit(metafile))
    return 0
