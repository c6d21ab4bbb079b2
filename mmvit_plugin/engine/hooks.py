"""Hooks: a resumed run continues exactly where the interrupted one stopped, and a compiled
``train_step`` can trace the optimizer."""
from typing import Optional

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmengine.registry import HOOKS

_KEY = 'torch_rng_state'


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Saves torch's random state in each checkpoint and restores it when training resumes.

    mmengine restores weights, optimizer, schedulers and the iteration on ``--resume``, and replays
    the data loader up to that iteration, which also replays the data pipeline's numpy/python
    random draws. What it does not restore is torch's global generator, which drop path and
    dropout draw from; without it a resumed run trains with other masks than an uninterrupted one
    would. This hook stores that state (CPU and CUDA) beside the iteration it belongs to and puts it
    back right before the first resumed iteration, after the data loader has been replayed.

    Checkpoints come from rank 0, so in a distributed run every rank resumes with rank 0's state:
    that is exact when ranks share one seed (mmengine's default, ``diff_rank_seed=False``); with
    ``diff_rank_seed=True`` the other ranks keep the fresh state their seed gave them.
    """

    priority = 'VERY_HIGH'  # before other hooks' before_train_iter may draw random numbers

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(iter=checkpoint['meta']['iter'], cpu=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state()  # this rank's device
        checkpoint[_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Called for ``load_from`` as well as for resume; before_train_iter tells them apart by
        # the iteration (a fine-tuning run starts at 0, not at the checkpoint's iteration).
        self._pending = checkpoint.get(_KEY)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        state, self._pending = self._pending, None
        if state is None or runner.iter != state['iter']:
            return
        if get_world_size() > 1 and get_rank() != 0 and runner.cfg.get('randomness', {}).get(
                'diff_rank_seed', False):
            return
        torch.set_rng_state(state['cpu'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state['cuda'])


@HOOKS.register_module()
class PlainParamGroupsHook(Hook):
    """Turns the optimizers' parameter groups into plain dicts before training starts.

    mmengine builds the optimizer through its registry, which hands it the parameter groups as
    ``ConfigDict``s. With the Runner's ``compile`` option, ``train_step`` is compiled with the
    optimizer step inside it, and torch 2.14's dynamo stops on those groups with an internal
    error (``'UserDefinedDictVariable' object has no attribute 'items'`` in ``Adam.step``). The
    groups keep their keys and values (the schedulers read them through the optimizer each
    step); only their type changes. Harmless without ``compile``.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        wrappers = runner.optim_wrapper
        for wrapper in wrappers.values() if isinstance(wrappers, OptimWrapperDict) else [wrappers]:
            groups = wrapper.optimizer.param_groups
            groups[:] = [dict(group) for group in groups]
