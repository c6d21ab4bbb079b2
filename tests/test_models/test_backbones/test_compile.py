"""torch.compile: every backbone traces into one graph (no graph breaks), and with dynamic=True a
new input size reuses the compiled graph (bounded, documented exceptions below: CSWin's
convolution backend choice, Swin's stages with a single window, dynamo's duck sizing).

Graph breaks are counted with ``torch._dynamo.explain`` (dynamo only, no backend compiles); the
recompile tests compile with a counting backend around ``'eager'`` (what dynamo guards on does
not depend on the backend, and inductor would take minutes on 2 cores). tools/benchmark.py
``--compile`` measures inductor's speed.
"""
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Tuple

import pytest
import torch
import torch._dynamo
from mmengine.registry import MODELS

import mmvit_plugin  # noqa: F401
from backbone_checks import SMALL_ARCHS as SMALL, assert_rel_close

REPO = Path(__file__).resolve().parents[3]
TOY_SEG_CFG = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'

#: Non-square first: dynamo's duck sizing gives equal sizes one symbol, so a square first input
#: makes H == W a guard and the first non-square one recompiles (once).
SIZES = [(64, 96), (97, 131), (160, 122)]


def build(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.build(dict(type=name, **SMALL[name], **kwargs))


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class CountingBackend:
    """A dynamo backend that runs the captured graphs eagerly and counts compilations."""

    def __init__(self) -> None:
        self.graphs: List[torch.fx.GraphModule] = []

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list) -> Callable:
        self.graphs.append(gm)
        return gm.forward


@pytest.mark.parametrize('name', sorted(SMALL))
@pytest.mark.parametrize('mode', ['eval', 'train'])
def test_one_graph_without_breaks(name, mode):
    """Inference (no_grad) and a training forward (drop path on, MLP recomputation
    ``with_cp='act'``) each trace into a single graph."""
    model = build(name, drop_path_rate=0.1, with_cp='act' if mode == 'train' else False)
    model.train(mode == 'train')
    x = torch.randn(2, 3, 64, 96)
    with torch.set_grad_enabled(mode == 'train'):
        explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, [str(r.reason) for r in explanation.break_reasons]
    assert explanation.graph_count == 1


def compile_at_sizes(name: str, sizes: List[Tuple[int, int]]) -> List[int]:
    """Graphs compiled so far after each size (dynamic=True, fullgraph), and outputs checked
    against the eager model: identical, the counting backend runs the same ops eagerly."""
    model = build(name).eval()
    backend = CountingBackend()
    compiled = torch.compile(model, backend=backend, dynamic=True, fullgraph=True)
    counts = []
    for size in sizes:
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            for i, (got, expected) in enumerate(zip(compiled(x), model(x))):
                assert_rel_close(got, expected, 0, f'{size} level {i}')
        counts.append(len(backend.graphs))
    return counts


@pytest.mark.parametrize('name', ['CvT', 'MPViT'])
def test_dynamic_compile_takes_new_sizes_without_recompiling(name):
    assert compile_at_sizes(name, SIZES) == [1] * len(SIZES)


@pytest.mark.slow
def test_square_first_input_recompiles_once():
    """Duck sizing: compiled on a square input, H == W is guarded; the first non-square input
    compiles once more, and then no other size does."""
    assert compile_at_sizes('MPViT', [(64, 64), (64, 96), (97, 131)]) == [1, 2, 2]


@pytest.mark.slow
def test_cswin_recompiles_are_bounded():
    """CSWin's LePE is a depthwise convolution over ``batch x stripes`` maps, and PyTorch picks
    the CPU convolution backend by whether that count is at least 16 (a guard on the size). For a
    batch of 2 the count crosses 16 at H or W of about 115 (stage 2) and 787 (stage 3), so sizes
    on the same side of those thresholds share one graph; at most one graph per combination."""
    counts = compile_at_sizes('CSWin', [(128, 160), (131, 197), (160, 130), (97, 101), (99, 111)])
    assert counts == [1, 1, 1, 2, 2]


@pytest.mark.slow
def test_swin_takes_every_size_without_recompiling():
    """One graph for every size, including sizes that bring stages down to a single window
    (stage 4 at 97x131 and 160x122, stages 3-4 at 64x96, stages 2-4 at 40x50): the window
    gathers work on flattened rows, so no view asks whether a stage has one window (before they
    did, compiling once more per stage that dropped to one window: [1, 1, 1, 2, 2, 3, 4, 4])."""
    counts = compile_at_sizes('Swin', [(256, 320), (333, 517), (232, 300),  # 2+ windows each
                                       (97, 131), (160, 122),  # stage 4: one window
                                       (64, 96),  # stages 3 and 4
                                       (40, 50), (300, 200)])  # stages 2-4; then back
    assert counts == [1] * 8


def _train_losses(log: str) -> List[float]:
    return [float(m) for m in re.findall(r'Iter\(train\) \[\d+/\d+\].*? loss: ([\d.]+)', log)]


@pytest.mark.slow
def test_runner_compile_option_trains_like_eager(tmp_path):
    """mmengine's ``compile`` option (the Runner compiles ``train_step``) on the toy UperNet +
    CSWin config: training runs, gives the eager run's losses (backend 'eager' runs the same
    ops), and no graph break or recompile happens in this package's code (those in mmseg's
    losses and data preprocessor are mmseg's)."""
    data = tmp_path / 'ade'
    subprocess.run([sys.executable, str(REPO / 'tools' / 'make_toy_data.py'), '--kind', 'ade',
                    '--out', str(data), '--train', '4', '--val', '2'], check=True,
                   capture_output=True)
    options = [f'{split}_dataloader.dataset.data_root={data}' for split in ('train', 'val', 'test')]
    options += ['train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False', 'train_cfg.max_iters=4',
                'train_cfg.val_interval=100', 'default_hooks.logger.interval=1',
                'default_hooks.checkpoint.interval=100']
    logs = {}
    for run, extra in (('eager', []), ('compiled', ['compile.backend=eager'])):
        res = subprocess.run(
            [sys.executable, str(REPO / 'tools' / 'train.py'), str(TOY_SEG_CFG), '--work-dir',
             str(tmp_path / run), '--cfg-options', *options, *extra],
            capture_output=True, text=True, cwd=REPO,
            env=dict(os.environ, TORCH_LOGS='graph_breaks,recompiles'))
        assert res.returncode == 0, res.stderr[-4000:]
        logs[run] = res.stdout + res.stderr
    assert 'Model has been "compiled"' in logs['compiled']
    eager, compiled = _train_losses(logs['eager']), _train_losses(logs['compiled'])
    assert len(eager) == 4 and compiled == pytest.approx(eager, rel=1e-5)
    ours = [line for line in logs['compiled'].splitlines()
            if ('Graph break' in line or 'Recompiling' in line) and 'mmvit_plugin' in line]
    assert not ours, ours


@pytest.mark.slow
@pytest.mark.parametrize('name', ['CvT', 'MPViT'])
def test_inductor_trains_with_dynamic_sizes(name):
    """Training compiled by inductor, with the options every compile of ours adds
    (compile_kwargs), at a second input size: dynamo then recompiles with dynamic sizes (as in
    multi-scale detection training), and without the options torch 2.14.1's inductor fails there
    on both models (pytorch#185510). Outputs and gradients as eager's at both sizes. Parameter
    gradients are compared all together, on the scale of the largest: some are zero up to
    rounding (the bias of k shifts every score of a query alike)."""
    from mmvit_plugin.engine.compile import compile_kwargs
    model = build(name, drop_path_rate=0.)  # drop path would draw other masks when compiled
    compiled = torch.compile(model, **compile_kwargs(True))
    for size in [(64, 96), (70, 50)]:
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(size[0]))
        results = []
        for run in (model, compiled):
            x_ = x.clone().requires_grad_()
            outs = run(x_)
            weights = torch.Generator().manual_seed(1)
            sum((out * torch.randn(out.shape, generator=weights)).mean() for out in outs).backward()
            grads = torch.cat([p.grad.flatten() for p in model.parameters()])
            results.append(([out.detach() for out in outs], x_.grad, grads))
            model.zero_grad(set_to_none=True)
        (outs, x_grad, grads), (ref_outs, ref_x_grad, ref_grads) = results[1], results[0]
        for level, (out, ref) in enumerate(zip(outs, ref_outs)):
            assert_rel_close(out, ref, 1e-5, f'{name} at {size}, level {level}')
        assert_rel_close(x_grad, ref_x_grad, 1e-4, f'{name} at {size}, input gradient')
        assert_rel_close(grads, ref_grads, 1e-4, f'{name} at {size}, parameter gradients')
