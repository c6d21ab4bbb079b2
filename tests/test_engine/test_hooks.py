"""RandomStateHook: torch's random state travels with the checkpoint into a resumed run."""
from types import SimpleNamespace

import torch
from mmengine.registry import HOOKS

import mmvit_plugin  # noqa: F401
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
