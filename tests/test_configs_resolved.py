"""Every config resolves to the dict recorded in tests/data/resolved_configs.json.gz.

The recording is the output of ``mmengine.config.Config.fromfile(path).to_dict()`` for every
config a user runs (every ``.py`` under ``configs/`` outside ``configs/_base_/``, the toy configs
included): model, data, pipelines, schedules, optimizer, hooks, runtime, TTA, and the helper
variables configs define. It guards the layout of ``configs/`` (what lives in which ``_base_``
file): reorganising the files must not change what any config means. Nothing in a resolved dict
depends on the file's location, so nothing is left out.

Serialisation (``_jsonable``): dict keys sorted; a tuple is written ``{"__tuple__": [...]}`` so
that a tuple turning into a list (or back) is a difference; a value JSON cannot hold is written as
``{"__repr__": repr(value)}``.

The comparison allows two named differences (``EXCEPTIONS``), applied alike to the recording and
to the config as it resolves now; nothing else may differ.

When a config is meant to resolve differently (a recipe changed on purpose), record again and
review the diff of the data file:

    RECORD_RESOLVED_CONFIGS=1 .venv/bin/python -m pytest tests/test_configs_resolved.py
"""
import gzip
import json
import os
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs'
RECORDING = REPO / 'tests' / 'data' / 'resolved_configs.json.gz'
CONFIGS = sorted(p for p in CONFIG_DIR.rglob('*.py') if '_base_' not in p.parts)
RECORD = os.environ.get('RECORD_RESOLVED_CONFIGS') == '1'


def _name(path: Path) -> str:
    return path.relative_to(CONFIG_DIR).as_posix()


def _jsonable(value):
    """``value`` as plain JSON data, tuples and non-JSON values marked (see the module docstring)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {'__tuple__': [_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {'__repr__': repr(value)}


def resolve(path: Path) -> dict:
    """The config at ``path`` as mmengine resolves it, in the recording's form."""
    from mmengine.config import Config
    return _jsonable(Config.fromfile(str(path)).to_dict())


def record() -> None:
    """Write the resolved dict of every config to ``RECORDING`` (sorted keys, one file)."""
    data = {_name(path): resolve(path) for path in CONFIGS}
    RECORDING.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(RECORDING, 'wt') as f:  # 830 KB of JSON, 20 KB packed
        f.write(json.dumps(data, indent=1, sort_keys=True) + '\n')


@lru_cache(maxsize=None)
def recorded() -> dict:
    if RECORD:
        record()
    with gzip.open(RECORDING, 'rt') as f:
        return json.load(f)


# --- Named exceptions: the only ways a config may resolve otherwise than recorded ---

#: Top-level variables of configs/_base_/backbones/*.py (``backbone``: the variant's
#: model.backbone; ``backbone_channels``: the channels of its levels, for the heads), read by the
#: leaf configs as ``_base_.backbone``. mmengine keeps every variable of every base in the resolved
#: config, and a backbone base cannot set ``model`` itself (mmengine refuses a key that two bases
#: of one file both define, and the recipe base defines ``model``); variables whose names start
#: with ``__`` are dropped, but then no child can read them either. Nothing outside the configs
#: reads these two keys. (Recorded before the backbone bases existed.)
BACKBONE_BASE_VARIABLES = ('backbone', 'backbone_channels')


def _default_out_indices(backbone_type: str):
    import inspect

    import mmvit_plugin  # noqa: F401  (registers the backbones)
    from mmengine.registry import MODELS
    return inspect.signature(MODELS.get(backbone_type)).parameters['out_indices'].default


def drop_backbone_base_variables(cfg: dict) -> None:
    for key in BACKBONE_BASE_VARIABLES:
        cfg.pop(key, None)


def drop_default_out_indices(cfg: dict) -> None:
    """model.backbone.out_indices where it is the backbone's default (levels 0..3): every config
    spelled it out when recorded; now only those that differ (RetinaNet's (1, 2, 3)) do."""
    backbone = cfg['model']['backbone']
    default = _default_out_indices(backbone['type'])
    assert tuple(default) == (0, 1, 2, 3), default
    if backbone.get('out_indices') == _jsonable(tuple(default)):
        del backbone['out_indices']


EXCEPTIONS = (drop_backbone_base_variables, drop_default_out_indices)


def comparable(cfg: dict) -> dict:
    """``cfg`` (in the recording's form) with the named exceptions applied."""
    cfg = json.loads(json.dumps(cfg))  # a copy
    for exception in EXCEPTIONS:
        exception(cfg)
    return cfg


def test_every_config_is_recorded():
    assert sorted(recorded()) == [_name(p) for p in CONFIGS], (
        'configs added or removed since the recording: record again (see the module docstring)')


@pytest.mark.parametrize('path', CONFIGS, ids=_name)
def test_resolves_as_recorded(path):
    expected = recorded().get(_name(path))
    assert expected is not None, f'{_name(path)} is not in {RECORDING.name}'
    expected, actual = comparable(expected), comparable(resolve(path))
    assert actual == expected, '\n'.join(_differences(expected, actual))


def _differences(expected, actual, where='cfg'):
    """Where ``actual`` differs from ``expected``: one line per differing leaf or key."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        lines = []
        for key in sorted(expected.keys() | actual.keys()):
            if key not in actual:
                lines.append(f'{where}.{key}: missing (recorded {expected[key]!r})')
            elif key not in expected:
                lines.append(f'{where}.{key}: not recorded ({actual[key]!r})')
            else:
                lines += _differences(expected[key], actual[key], f'{where}.{key}')
        return lines
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [line for i, (e, a) in enumerate(zip(expected, actual))
                for line in _differences(e, a, f'{where}[{i}]')]
    return [] if expected == actual else [f'{where}: recorded {expected!r}, now {actual!r}']
