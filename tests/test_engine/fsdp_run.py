"""One rank of an FSDP training run on CPU, as tools/train.py runs it (training_config +
build_runner + runner.train), then what the test needs to know about the trained model, written to
OUT_DIR/rank{RANK}.json. Started by tests/test_engine/test_fsdp.py under torchrun:

    python -m torch.distributed.run --nproc_per_node 2 fsdp_run.py CONFIG WORK_DIR OUT_DIR \
        [--resume] key=value ...
"""
import json
import math
import sys
from pathlib import Path


def settings(optim_wrapper, names):
    """(lr, weight_decay) of every parameter of the optimizer, by parameter name."""
    return {names[id(p)]: (g['lr'], g['weight_decay'])
            for g in optim_wrapper.optimizer.param_groups for p in g['params']}


def compare_groups(runner, cfg):
    """The optimizer's settings per parameter against those the config's constructor gives the
    plain model (built again here, without FSDP), before any step of the lr schedule."""
    import copy

    from mmengine.optim import build_optim_wrapper

    from mmvit_plugin.apis.runner import build_model
    plain = build_model(cfg)
    expected = settings(build_optim_wrapper(plain, copy.deepcopy(cfg.optim_wrapper)),
                        {id(p): n for n, p in plain.named_parameters()})
    names = {id(p): n.replace('_fsdp_wrapped_module.', '')
             for n, p in runner.model.named_parameters()}
    actual = {n: (g['initial_lr'], g['weight_decay'])
              for g in runner.optim_wrapper.optimizer.param_groups for n in
              (names[id(p)] for p in g['params'])}
    if actual == expected:
        return 'as on the plain model'
    differing = sorted(k for k in expected.keys() | actual.keys()
                       if expected.get(k) != actual.get(k))
    return f'{len(differing)} differ, e.g. ' + ', '.join(
        f'{k}: {actual.get(k)} vs {expected.get(k)}' for k in differing[:3])


def main(argv):
    config, work_dir, out_dir, *rest = argv
    resume = '--resume' in rest
    from mmvit_plugin.apis.cli import parse_cfg_options
    cfg_options = parse_cfg_options([item for item in rest if item != '--resume'])

    import torch
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from mmvit_plugin.apis.runner import build_runner
    from mmvit_plugin.apis.training import training_config
    cfg = training_config(config, work_dir, 'auto' if resume else None, cfg_options=cfg_options,
                          launcher='pytorch')
    runner = build_runner(cfg)
    runner.train()

    model = runner.model
    units = [m for m in model.modules() if isinstance(m, FSDP)]
    wrapped = sorted({type(u.module).__name__ for u in units if u is not model})
    local = sum(p.numel() for p in model.parameters())
    with FSDP.summon_full_params(model, writeback=False):
        full = sum(p.numel() for p in model.parameters())
    scalars = runner.message_hub.log_scalars
    loss = scalars['train/loss'].current() if 'train/loss' in scalars else math.nan
    grad_norm = scalars['train/grad_norm'].current() if 'train/grad_norm' in scalars else math.nan
    result = dict(optimizer_groups=compare_groups(runner, cfg),
                  flat_params=all(p.dim() == 1 for p in model.parameters()),
                  rank=runner.rank, world_size=runner.world_size, iter=runner.iter,
                  model_type=type(model).__name__, units=len(units), wrapped=wrapped,
                  local_params=local, full_params=full, loss=float(loss),
                  grad_norm=float(grad_norm),
                  optimizer=type(runner.optim_wrapper).__name__,
                  optimizer_steps=max(int(state['step']) for state in
                                      runner.optim_wrapper.optimizer.state.values()),
                  device_ids={str(p.device) for p in model.parameters()}.pop())
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / f'rank{runner.rank}.json').write_text(json.dumps(result))
    torch.distributed.barrier()


if __name__ == '__main__':
    main(sys.argv[1:])
