"""The scale-out configs (``configs/scaleout/*_fsdp.py``, ``*_deepspeed.py``): each is the recipe of
configs/ it inherits, trained by mmengine's FlexibleRunner with a sharding strategy and activation
checkpointing in the backbone, and nothing else changed (so tests/test_configs.py and the model
zoo's metafile leave them out: they are their recipe's model and figures). Their mixins live in
configs/_base_/runtime/; FSDP running on CPU: tests/test_engine/test_fsdp.py."""
from pathlib import Path

import pytest
from mmengine.config import Config

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'configs'
SCALEOUT_DIR = CONFIG_DIR / 'scaleout'
STRATEGIES = {'_fsdp': ('FSDPStrategy', 'FSDPOptimWrapper'),
              '_deepspeed': ('DeepSpeedStrategy', 'DeepSpeedOptimWrapper')}
LEAVES = sorted(SCALEOUT_DIR.glob('*.py'))


def recipe_of(path: Path) -> Path:
    suffix = next(s for s in STRATEGIES if path.stem.endswith(s))
    return CONFIG_DIR / (path.stem[:-len(suffix)] + '.py')


def test_the_large_variants_have_scale_out_configs():
    names = {p.name for p in LEAVES}
    for recipe in ('upernet_swin_l_in22k_ade20k_640', 'upernet_cswin_l_in22k_ade20k_640'):
        assert f'{recipe}_fsdp.py' in names and f'{recipe}_deepspeed.py' in names
    for recipe in ('mask2former_swin_l_in22k_ade20k_640', 'mask2former_cswin_l_in22k_ade20k_640',
                   'mask2former_mpvit_b_ade20k'):
        assert f'{recipe}_fsdp.py' in names


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: p.name)
def test_scale_out_config_is_its_recipe_on_a_flexible_runner(path):
    import mmvit_plugin  # noqa: F401  (registers the wrap policy and FSDPOptimWrapper)
    from mmengine.registry import FUNCTIONS, OPTIM_WRAPPERS
    strategy, optim_wrapper = STRATEGIES[next(s for s in STRATEGIES if path.stem.endswith(s))]
    cfg = Config.fromfile(str(path)).to_dict()
    recipe = Config.fromfile(str(recipe_of(path))).to_dict()

    assert cfg.pop('runner_type') == 'FlexibleRunner' and 'runner_type' not in recipe
    built = cfg.pop('strategy')
    assert built['type'] == strategy and 'strategy' not in recipe
    if strategy == 'FSDPStrategy':
        wrapper = built['model_wrapper']
        assert wrapper['use_orig_params'] is True  # paramwise_cfg matches parameter names
        assert FUNCTIONS.get(wrapper['auto_wrap_policy']['type']) is not None
        assert built['state_dict_cfg'] == 'full'  # whole-model checkpoints
        import mmdet.models.layers as layers
        for name in wrapper['auto_wrap_policy'].get('module_names', []):  # classes that exist
            assert isinstance(getattr(layers, name, None), type), name
    assert cfg['optim_wrapper'].pop('type') == optim_wrapper
    assert OPTIM_WRAPPERS.get(optim_wrapper) is not None or strategy == 'DeepSpeedStrategy'
    assert recipe['optim_wrapper'].pop('type') == 'OptimWrapper'
    assert cfg['model']['backbone'].pop('with_cp') is True
    assert recipe['model']['backbone'].pop('with_cp', False) is False
    assert cfg == recipe  # model, data, schedule, optimizer settings, hooks: the recipe's
