"""RandomStateHook: torch's random state travels with the checkpoint into a resumed run."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import HOOKS

import mmvit_plugin  # noqa: F401
from backbone_checks import assert_rel_close
from mmvit_plugin.engine import RandomStateHook


def fake_runner(iteration):
    return SimpleNamespace(iter=iteration, cfg={})


def test_registered_in_mmengine_root_registry():
    assert isinstance(HOOKS.build(dict(type='RandomStateHook')), RandomStateHook)


def test_resume_restores_the_state_saved_with_the_checkpoint():
    hook = RandomStateHook()
    torch.manual_seed(3)
    checkpoint = dict(meta=dict(iter=8))
    hook.before_save_checkpoint(fake_runner(7), checkpoint)
    expected = torch.rand(5)  # what the uninterrupted run draws next

    torch.manual_seed(0)  # a restarted process, seeded afresh, then resumed
    hook.after_load_checkpoint(fake_runner(8), checkpoint)
    hook.before_train_iter(fake_runner(8), batch_idx=8)
    assert torch.equal(torch.rand(5), expected)


def test_restores_once_and_only_at_the_checkpoint_iteration():
    hook = RandomStateHook()
    checkpoint = dict(meta=dict(iter=8))
    hook.before_save_checkpoint(fake_runner(7), checkpoint)

    torch.manual_seed(0)
    fresh = torch.rand(5)
    torch.manual_seed(0)
    hook.after_load_checkpoint(fake_runner(0), checkpoint)  # load_from: fine-tuning starts at 0
    hook.before_train_iter(fake_runner(0), batch_idx=0)
    assert torch.equal(torch.rand(5), fresh)

    torch.manual_seed(0)
    hook.before_train_iter(fake_runner(8), batch_idx=8)  # nothing pending any more
    assert torch.equal(torch.rand(5), fresh)


def test_checkpoints_without_a_saved_state_leave_the_generator_alone():
    hook = RandomStateHook()
    torch.manual_seed(0)
    fresh = torch.rand(5)
    torch.manual_seed(0)
    hook.after_load_checkpoint(fake_runner(8), dict(meta=dict(iter=8)))
    hook.before_train_iter(fake_runner(8), batch_idx=8)
    assert torch.equal(torch.rand(5), fresh)


@pytest.mark.numerics
def test_plain_param_groups_let_a_compiled_train_step_trace_the_optimizer():
    """mmengine hands the optimizer ConfigDict groups; compiled with the optimizer step inside
    (as the Runner's ``compile`` option does), dynamo fails on them. After the hook, the same
    step compiles and gives the eager step's weights."""
    import copy

    import torch._dynamo
    import torch.nn as nn
    from mmengine.config import ConfigDict
    from mmengine.optim import build_optim_wrapper

    from mmvit_plugin.engine import PlainParamGroupsHook

    def setup():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        wrapper = build_optim_wrapper(model, ConfigDict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05),
            paramwise_cfg=dict(custom_keys={'1.': dict(decay_mult=0.)})))
        return model, wrapper

    # A weighted sum: the plain sum of squares of a LayerNorm output is constant, so the first
    # layer's gradient would be rounding noise, which Adam scales up to full-size steps.
    def train_step(model, wrapper, x, weights):
        wrapper.update_params((model(x) * weights).sum())

    torch.manual_seed(1)
    x, weights = torch.randn(3, 4), torch.randn(3, 4)
    model, wrapper = setup()
    assert all(isinstance(g, ConfigDict) for g in wrapper.optimizer.param_groups)
    before = copy.deepcopy([{k: v for k, v in g.items() if k != 'params'}
                            for g in wrapper.optimizer.param_groups])
    PlainParamGroupsHook().before_train(SimpleNamespace(optim_wrapper=wrapper))
    groups = wrapper.optimizer.param_groups
    assert all(type(g) is dict for g in groups)
    assert [{k: v for k, v in g.items() if k != 'params'} for g in groups] == before
    torch._dynamo.reset()
    compiled = torch.compile(train_step, backend='eager', fullgraph=False)
    for _ in range(2):
        compiled(model, wrapper, x, weights)
    eager_model, eager_wrapper = setup()
    for _ in range(2):
        train_step(eager_model, eager_wrapper, x, weights)
    for got, expected, start in zip(model.parameters(), eager_model.parameters(),
                                    setup()[0].parameters()):
        assert (expected - start).abs().max() > 1e-3  # the steps moved the weights
        # the compiled AdamW step rounds differently: compared on the scale of the update, not of
        # the weights (9e-6 of it: a few float32 steps of the weights, which are 50x larger)
        assert_rel_close(got - start, expected - start, 1e-4, 'update')
    torch._dynamo.reset()
