"""compile_kwargs: the inductor options of every compile this package makes (training's
``compile`` entry, tools/benchmark.py --compile). Whether inductor then trains with dynamic sizes
is tests/test_models/test_backbones/test_compile.py's slow test."""
from pathlib import Path

import pytest
import torch

from mmvit_plugin.apis.training import training_config
from mmvit_plugin.engine.compile import INDUCTOR_OPTIONS, compile_kwargs

TOY_SEG_CFG = str(Path(__file__).resolve().parents[2] / 'configs' / 'toy' / 'upernet_cswin_toy.py')


@pytest.mark.parametrize('cfg', [None, False])
def test_no_compile_stays_none(cfg):
    assert compile_kwargs(cfg) is None


def test_inductor_gets_the_options_and_other_backends_do_not():
    assert compile_kwargs(True) == {'options': INDUCTOR_OPTIONS}
    assert compile_kwargs(dict(backend='inductor', dynamic=True)) == dict(
        backend='inductor', dynamic=True, options=INDUCTOR_OPTIONS)
    assert compile_kwargs(dict(backend='eager', fullgraph=True)) == dict(backend='eager',
                                                                         fullgraph=True)


def test_the_caller_s_options_win_and_the_input_is_not_changed():
    cfg = dict(options={'strict_output_strides': False, 'max_autotune': True})
    assert compile_kwargs(cfg)['options'] == {'strict_output_strides': False,
                                              'max_autotune': True}
    assert cfg == dict(options={'strict_output_strides': False, 'max_autotune': True})


def test_a_mode_becomes_its_options_which_torch_compile_accepts():
    """torch.compile refuses ``mode`` and ``options`` together; the mode's own options stay."""
    from torch._inductor import list_mode_options
    kwargs = compile_kwargs(dict(mode='max-autotune-no-cudagraphs'))
    assert 'mode' not in kwargs
    assert kwargs['options'] == {**INDUCTOR_OPTIONS,
                                 **list_mode_options('max-autotune-no-cudagraphs')}
    with pytest.raises(RuntimeError, match='mode or options'):
        torch.compile(torch.nn.Linear(2, 2), mode='default', options=INDUCTOR_OPTIONS)
    torch.compile(torch.nn.Linear(2, 2), **kwargs)  # lazy: checks the option names only


def test_training_config_compiles_with_the_options(tmp_path):
    cfg = training_config(TOY_SEG_CFG, str(tmp_path), cfg_options={'compile': True})
    assert cfg.compile == {'options': INDUCTOR_OPTIONS}
    cfg = training_config(TOY_SEG_CFG, str(tmp_path), cfg_options={'compile.backend': 'eager'})
    assert cfg.compile == {'backend': 'eager'}
    assert 'compile' not in training_config(TOY_SEG_CFG, str(tmp_path))
