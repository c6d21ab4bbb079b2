"""FlexibleRunner + FSDPStrategy with our backbones (mmvit_plugin.engine.fsdp,
configs/_base_/runtime/fsdp.py), on CPU over gloo: the block wrap policy, the fit rule on FSDP's
load path, whole-model gradient clipping, and (slow) a real two-process training run through
tools/train.py's code path: sharded parameters, finite loss, a checkpoint that loads back into a
plain model and resumes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from loopback import free_port
from mmvit_plugin.checkpoint import CheckpointError
from mmvit_plugin.engine import load_purpose, load_weights
from mmvit_plugin.engine.fsdp import (backbone_blocks, cpu_strategy, is_fsdp_config,
                                      mmvit_block_wrap_policy)

REPO = Path(__file__).resolve().parents[2]
TOY_SEG = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'
FSDP_MIXIN = REPO / 'configs' / '_base_' / 'runtime' / 'fsdp.py'


@pytest.fixture
def one_rank(monkeypatch, one_torch_thread):
    """A gloo process group of one rank in this process (FSDP needs one), removed afterwards."""
    import torch.distributed as dist
    monkeypatch.setenv('LOCAL_RANK', '0')  # mmengine's FSDPStrategy reads it
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{free_port()}', rank=0,
                            world_size=1)
    yield
    dist.destroy_process_group()


class Segmenter(nn.Module):
    """A small CSWin and a 1x1 head: a model with backbone blocks and something else."""

    def __init__(self):
        super().__init__()
        from mmvit_plugin.models.families import build_backbone
        self.backbone = build_backbone('CSWin', dict(embed_dims=16, depths=(1, 2, 1, 1),
                                                     num_heads=(2, 2, 4, 4)), with_cp=True)
        self.head = nn.Conv2d(self.backbone.out_channels[0], 3, 1)

    def forward(self, x):
        outs = self.backbone(x)  # every level reaches the output (and has gradients)
        return self.head(outs[0]) + sum(o.square().mean() for o in outs[1:])


def fsdp_strategy(tmp_path):
    from mmengine._strategy import FSDPStrategy
    return FSDPStrategy(
        work_dir=str(tmp_path), state_dict_cfg='full',
        model_wrapper=dict(device_id='cpu', auto_wrap_policy=dict(type='mmvit_block_wrap_policy')))


def test_block_wrap_policy_makes_every_backbone_block_a_unit(one_rank):
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    torch.manual_seed(0)
    plain = Segmenter()
    model = FSDP(Segmenter(), device_id='cpu', use_orig_params=True,
                 auto_wrap_policy=mmvit_block_wrap_policy)
    model.load_state_dict(plain.state_dict())  # FSDP's default: a full state dict
    units = [m for m in model.modules() if isinstance(m, FSDP) and m is not model]
    blocks = list(backbone_blocks(plain.backbone))
    assert len(blocks) == 5 and [type(u.module) for u in units] == [type(b) for b in blocks]
    images = torch.randn(2, 3, 40, 56)
    out = model(images)  # with_cp=True: each block recomputed in backward, inside its unit
    out.square().mean().backward()
    expected = plain(images)
    expected.square().mean().backward()
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6)
    plain_grads = {n: p.grad for n, p in plain.named_parameters()}
    with FSDP.summon_full_params(model, with_grads=True):
        grads = {n.replace('_fsdp_wrapped_module.', ''): p.grad
                 for n, p in model.named_parameters()}
        assert sorted(grads) == sorted(plain_grads)
        for name, grad in grads.items():
            assert torch.allclose(grad, plain_grads[name], rtol=1e-4, atol=1e-7), name


def test_block_wrap_policy_wraps_named_classes_and_leaves_the_rest():
    head = nn.Conv2d(4, 4, 1)
    assert mmvit_block_wrap_policy(head, recurse=True, nonwrapped_numel=0)
    assert not mmvit_block_wrap_policy(head, recurse=False, nonwrapped_numel=10**9)
    assert mmvit_block_wrap_policy(head, recurse=False, nonwrapped_numel=0,
                                   module_names=('Conv2d', ))


def test_fsdp_strategy_loads_under_the_fit_rule(one_rank, tmp_path):
    """mmengine's FSDPStrategy.load_model_state_dict loads into the FSDP model directly; the
    plugin applies the fit rule there, with the plain model's keys and shapes recorded when the
    strategy built it."""
    torch.manual_seed(0)
    source = Segmenter()
    strategy = fsdp_strategy(tmp_path)
    strategy.prepare(Segmenter())
    full = {k: v + 1 for k, v in source.state_dict().items()}

    half = {k: v for k, v in full.items() if not k.startswith('backbone.stages')}
    path = tmp_path / 'half.pth'
    torch.save(dict(state_dict=half), path)
    before = {k: v.clone() for k, v in strategy.model_state_dict().items()}
    with pytest.raises(CheckpointError) as err, load_purpose('evaluate'):
        strategy.load_checkpoint(str(path))
    message = str(err.value)
    assert str(path) in message and 'does not fit this Segmenter' in message
    assert 'backbone: ' in message and 'tensors missing' in message
    after = strategy.model_state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), 'a refused file changed weights'

    with pytest.raises(CheckpointError, match='Wrong shape'), load_purpose('resume'):
        strategy.load_model_state_dict({**full, 'head.weight': torch.zeros(3, 16, 3, 3)})

    with load_purpose('evaluate'):
        strategy.load_model_state_dict(full)
    loaded = strategy.model_state_dict()
    assert sorted(loaded) == sorted(full)
    assert all(torch.equal(loaded[k], full[k]) for k in full)


def test_fsdp_strategy_training_load_warns_and_keeps_the_rest(one_rank, tmp_path):
    """To start training, a file filling at least half of the model loads; what it lacks stays at
    its init and is named (as on every other load path)."""
    import logging

    from mmengine.logging import MMLogger
    torch.manual_seed(0)
    strategy = fsdp_strategy(tmp_path)
    strategy.prepare(Segmenter())
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    MMLogger.get_instance('test_fsdp_training_load').addHandler(handler)  # now the current one
    init = {k: v.clone() for k, v in strategy.model_state_dict().items()}
    full = {k: v + 1 for k, v in init.items() if not k.startswith('head.')}
    with load_purpose('train'):
        strategy.load_model_state_dict(full)
    loaded = strategy.model_state_dict()
    assert torch.equal(loaded['head.weight'], init['head.weight'])
    assert all(torch.equal(loaded[k], full[k]) for k in full)
    messages = [r.getMessage() for r in records]
    assert any('missing keys (left at their init): head.weight, head.bias' in m for m in messages)
    assert any(f'loaded {len(full)}/{len(init)} tensors' in m for m in messages), messages


def groups_by_name(optim_wrapper, names):
    """(lr, weight_decay) of every parameter of the optimizer, by parameter name."""
    return {names[id(p)]: (g['lr'], g['weight_decay'])
            for g in optim_wrapper.optimizer.param_groups for p in g['params']}


def test_fsdp_strategy_builds_the_optimizer_by_the_plain_model_s_names_and_shapes(one_rank,
                                                                                    tmp_path):
    """Under FSDP (use_orig_params) the parameters are named with ``_fsdp_wrapped_module.`` and,
    sharded over several ranks, are flat 1-D shards (over one rank FSDP does not shard: the
    two-process test below checks that case); the optimizer's rules must still see the model's
    own: here no decay on 1-D parameters (flat_decay_mult=0) but on every weight matrix, and 10x
    lr on the head by name. (mmengine's own path for built optimizers fails on torch 2.14's
    AdamW.)"""
    from mmengine.optim import build_optim_wrapper
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    cfg = dict(type='FSDPOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
               paramwise_cfg=dict(flat_decay_mult=0., custom_keys={'head': dict(lr_mult=10.)}))
    torch.manual_seed(0)
    plain = Segmenter()
    expected = groups_by_name(build_optim_wrapper(plain, dict(cfg)),
                              {id(p): n for n, p in plain.named_parameters()})
    strategy = fsdp_strategy(tmp_path)
    model, optim_wrapper = strategy.prepare(Segmenter(), optim_wrapper=dict(cfg))
    assert type(optim_wrapper).__name__ == 'FSDPOptimWrapper'
    names = {id(p): n.replace('_fsdp_wrapped_module.', '') for n, p in model.named_parameters()}
    assert groups_by_name(optim_wrapper, names) == expected
    assert expected['head.weight'] == (1e-2, 0.05)  # a custom key: its rule only
    assert all(v == (1e-3, 0.0) for k, v in expected.items() if k.endswith('norm1.weight'))
    assert all(v == (1e-3, 0.05) for k, v in expected.items() if k.endswith('attn.qkv.weight'))
    # a step updates the sharded parameters
    before = {k: v.clone() for k, v in strategy.model_state_dict().items()}
    model(torch.randn(1, 3, 32, 32)).square().mean().backward()
    optim_wrapper.step()
    after = strategy.model_state_dict()
    assert not torch.equal(before['head.weight'], after['head.weight'])
    with FSDP.summon_full_params(model):
        assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cpu_strategy_puts_flexible_runner_strategies_on_the_cpu():
    from mmengine.config import Config
    cfg = Config(dict(runner_type='FlexibleRunner',
                      strategy=dict(type='FSDPStrategy', model_wrapper=dict(use_orig_params=True))))
    assert is_fsdp_config(cfg)
    cpu_strategy(cfg)
    assert cfg.strategy.model_wrapper == dict(use_orig_params=True, device_id='cpu')
    ddp = Config(dict(runner_type='FlexibleRunner', strategy=dict(type='DDPStrategy')))
    cpu_strategy(ddp)
    assert ddp.strategy.model_wrapper == dict(type='MMDistributedDataParallel',
                                              broadcast_buffers=False, device_ids=None)
    plain = Config(dict(strategy=dict(type='FSDPStrategy')))  # the Runner ignores strategies
    assert not is_fsdp_config(plain)
    cpu_strategy(plain)
    assert 'model_wrapper' not in plain.strategy


def test_an_fsdp_config_without_a_launcher_is_an_error_saying_how_to_start_it():
    from mmvit_plugin.apis.config import load_config
    from mmvit_plugin.apis.runner import build_runner
    cfg = load_config(str(REPO / 'configs' / 'scaleout' / 'upernet_swin_l_in22k_ade20k_640_fsdp.py'))
    with pytest.raises(SystemExit, match='FSDPStrategy.*tools/dist_train.sh CONFIG NUM_GPUS'):
        build_runner(cfg)


# --- slow: two processes on CPU -----------------------------------------------------------------
def torchrun(*args, env=None):
    command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
               '--master_port', str(free_port()), str(Path(__file__).with_name('fsdp_run.py')),
               *map(str, args)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})}
    res = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    return res


@pytest.mark.slow  # two torchrun processes: make test-all / CI run it
def test_two_process_fsdp_training_on_cpu_shards_trains_saves_and_resumes(toy_data, tmp_path):
    data = toy_data('ade', 8, 2)
    config = tmp_path / 'toy_fsdp.py'
    config.write_text(f"_base_ = ['{TOY_SEG}', '{FSDP_MIXIN}']\n"
                      "model = dict(backbone=dict(with_cp=True))\n"
                      "optim_wrapper = dict(type='FSDPOptimWrapper')\n")
    work = tmp_path / 'work'
    options = [f'train_dataloader.dataset.data_root={data}',
               f'val_dataloader.dataset.data_root={data}',
               f'test_dataloader.dataset.data_root={data}', 'train_dataloader.batch_size=2',
               'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
               'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=4',
               'default_hooks.logger.interval=1', 'optim_wrapper.clip_grad.max_norm=1.0',
               # rules by shape (1-D: no decay) and by backbone depth (lr decay per block)
               'optim_wrapper.constructor=ViTLayerDecayOptimWrapperConstructor',
               'optim_wrapper.paramwise_cfg.layer_decay_rate=0.9']
    torchrun(config, work, tmp_path / 'first', 'train_cfg.max_iters=4', *options)
    ranks = [json.loads((tmp_path / 'first' / f'rank{r}.json').read_text()) for r in (0, 1)]
    for rank in ranks:
        assert rank['world_size'] == 2 and rank['iter'] == 4 and rank['device_ids'] == 'cpu'
        assert rank['model_type'] == 'MMFullyShardedDataParallel'
        assert rank['optimizer'] == 'FSDPOptimWrapper' and rank['optimizer_steps'] == 4
        assert rank['wrapped'] == ['CSWinBlock'] and rank['units'] == 4 + 1  # 4 blocks + root
        assert torch.isfinite(torch.tensor(rank['loss']))
        assert 0 < rank['local_params'] < rank['full_params']
        assert rank['flat_params']  # sharded: what an optimizer built on the FSDP model sees
        assert rank['optimizer_groups'] == 'as on the plain model', rank['optimizer_groups']
    # the shards of the two ranks together are the model, each holding about half
    assert ranks[0]['local_params'] + ranks[1]['local_params'] == ranks[0]['full_params']
    assert abs(ranks[0]['local_params'] - ranks[1]['local_params']) < 0.1 * ranks[0]['full_params']
    scalars = [json.loads(line) for run in work.iterdir() if run.is_dir()
               for line in (run / 'vis_data' / 'scalars.json').read_text().splitlines()]
    assert [s['iter'] for s in scalars if 'loss' in s] == [1, 2, 3, 4]
    assert all(s['grad_norm'] > 0 for s in scalars if 'loss' in s)
    # clipped by the norm of the whole model, the same on both ranks (not each shard's own)
    assert ranks[0]['grad_norm'] == pytest.approx(ranks[1]['grad_norm'], rel=1e-6)

    # the checkpoint is an ordinary whole-model file: every tensor of the plain toy model
    from mmvit_plugin.apis.config import load_config
    from mmvit_plugin.apis.runner import build_model
    checkpoint = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)
    plain = build_model(load_config(str(TOY_SEG)))
    fit = load_weights(plain, checkpoint['state_dict'], 'evaluate')
    assert fit.filled == fit.total and not fit.unexpected
    assert checkpoint['meta']['iter'] == 4 and 'optimizer' in checkpoint

    # --resume: FSDP's load path under the resume rule, on to iteration 6
    torchrun(config, work, tmp_path / 'resumed', '--resume', 'train_cfg.max_iters=6', *options)
    for r in (0, 1):
        resumed = json.loads((tmp_path / 'resumed' / f'rank{r}.json').read_text())
        assert resumed['iter'] == 6 and torch.isfinite(torch.tensor(resumed['loss']))
        assert resumed['optimizer_steps'] == 6  # AdamW's state came back with the weights
        assert resumed['optimizer_groups'] == 'as on the plain model'
