"""tools/benchmark_zoo.py end to end on toy data (a toy checkpoint saved here, a metafile written
here with a made-up published figure), and its command line (the pieces:
tests/test_benchmark/test_zoo*.py)."""
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from checkpoint_files import save_code_running_pickle
from tool_cli import REPO, run_tool, run_tool_main

SEG_CFG = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'
PUBLISHED_MIOU = 50.0  # made up: the toy configs have no published figure


def save_toy_checkpoint(path: Path) -> None:
    """The toy segmentor with its initial weights, as an mmengine checkpoint (what a training
    run writes: ``state_dict`` and ``meta``)."""
    from mmengine.config import Config
    from mmengine.runner.checkpoint import save_checkpoint
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(SEG_CFG)).model)
    model.init_weights()
    save_checkpoint(dict(state_dict=model.state_dict(), meta=dict(note='toy')), str(path))


def write_metafile(path: Path, broken_cfg: Path, refused_cfg: Path) -> None:
    result = dict(Task='Semantic Segmentation', Dataset='ADE20K',
                  Metrics={'mIoU': PUBLISHED_MIOU}, Source='made-up')
    doc = dict(
        Sources={'made-up': dict(Title='A made-up paper', URL='https://example.org/paper')},
        Models=[
            dict(Name='upernet_cswin_toy', **{'In Collection': 'UperNet'},
                 Config='configs/toy/upernet_cswin_toy.py', Results=[result]),
            dict(Name='broken_toy', **{'In Collection': 'UperNet'}, Config=str(broken_cfg),
                 Results=[result]),
            dict(Name='refused_toy', **{'In Collection': 'UperNet'}, Config=str(refused_cfg),
                 Results=[result]),
            dict(Name='mask_rcnn_cswin_toy', **{'In Collection': 'Mask R-CNN'},
                 Config='configs/toy/mask_rcnn_cswin_toy.py', Results=[]),
        ])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope='module')
def bench(tmp_path_factory, toy_data):
    """One benchmark run over four configs: one with a checkpoint, one broken config with a
    checkpoint, one whose checkpoint tools/test.py refuses (a pickle that runs code), one without
    a checkpoint; and tools/test.py on the first for comparison."""
    root = tmp_path_factory.mktemp('bench')
    data = toy_data('ade', 2, 3)
    ckpts = root / 'ckpts'
    ckpts.mkdir()
    save_toy_checkpoint(ckpts / 'upernet_cswin_toy.pth')
    (ckpts / 'broken_toy.pth').write_bytes((ckpts / 'upernet_cswin_toy.pth').read_bytes())
    broken = root / 'broken_toy.py'  # heads wired for other channels than the backbone gives
    broken.write_text(f"_base_ = ['{SEG_CFG}']\nmodel = dict(decode_head=dict("
                      "in_channels=[8, 16, 32, 64]))\n")
    refused = root / 'refused_toy.py'
    refused.write_text(f"_base_ = ['{SEG_CFG}']\n")
    save_code_running_pickle(ckpts / 'refused_toy.pth', root / 'code_ran')
    metafile = root / 'metafile.yaml'
    write_metafile(metafile, broken, refused)
    out = root / 'out'
    res = run_tool('benchmark_zoo', '--data-root', data, '--checkpoints', ckpts, '--metafile',
                   metafile, '--out-dir', out, check=False)
    metrics_file = root / 'test_py_metrics.json'
    run_tool('test', SEG_CFG, ckpts / 'upernet_cswin_toy.pth', '--data-root', data,
             '--work-dir', root / 'test_py', '--metrics-out', metrics_file)
    return SimpleNamespace(res=res, out=out, report=json.loads((out / 'results.json').read_text()),
                           markdown=(out / 'results.md').read_text(),
                           test_py=json.loads(metrics_file.read_text()),
                           code_ran=(root / 'code_ran').exists())


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_rows_skips_and_exit_status(bench):
    rows = bench.report['rows']
    assert [(r['config'], r['status']) for r in rows] == [
        ('configs/toy/upernet_cswin_toy.py', 'ok'), (rows[1]['config'], 'error'),
        (rows[2]['config'], 'error')]
    assert rows[1]['config'].endswith('broken_toy.py')
    assert rows[2]['config'].endswith('refused_toy.py')
    ok = rows[0]
    assert (ok['checkpoint'], ok['checkpoint_kind'], ok['metric']) == (
        'upernet_cswin_toy.pth', 'own', 'mIoU')
    assert ok['s_per_image'] > 0 and ok['wall_s'] > 0
    # the config without a checkpoint is skipped with a note naming the file looked for
    assert bench.report['skipped'] == [dict(
        config='configs/toy/mask_rcnn_cswin_toy.py',
        reason='no checkpoint (looked for mask_rcnn_cswin_toy.pth)')]
    # an error row does not end the run, but the exit status says there was one
    assert bench.res.returncode == 1, bench.res.stdout[-3000:] + bench.res.stderr[-3000:]
    assert '[1/3] upernet_cswin_toy' in bench.res.stdout  # progress
    assert '[2/3] broken_toy' in bench.res.stdout


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_measured_equals_test_py(bench):
    assert bench.report['rows'][0]['measured'] == round(bench.test_py['mIoU'], 2)


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_delta_against_the_published_value(bench):
    ok = bench.report['rows'][0]
    assert ok['published'] == PUBLISHED_MIOU and ok['source'] == 'made-up'
    assert ok['delta'] == round(ok['measured'] - PUBLISHED_MIOU, 2)


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_broken_config_is_an_error_row(bench):
    error = bench.report['rows'][1]
    assert 'config mismatch' in error['error'] and 'in_channels' in error['error']
    assert 'config mismatch' in Path(error['log']).read_text()


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_weights_that_do_not_load_are_an_error_row_without_figures(bench):
    """The code-running pickle is refused by tools/test.py: the row names that cause, carries no
    measured figure (in the JSON, the Markdown or the progress), and the code never ran."""
    error = bench.report['rows'][2]
    assert 'weights-only' in error['error'], error
    assert not {'metric', 'measured', 'published', 'delta', 's_per_image'} & set(error)
    row = next(line for line in bench.markdown.splitlines() if 'refused_toy.pth' in line)
    assert re.search(r'\| refused_toy.pth \| error \| .*weights-only.* \| \| \| \| \|$', row), row
    assert re.search(r'\[3/3\] refused_toy \(refused_toy.pth\): error \(exit [1-9]',
                     bench.res.stdout)
    assert not bench.code_ran


def test_a_failed_evaluation_never_shows_its_metrics(tmp_path, monkeypatch, toy_data):
    """Whatever a failing tools/test.py left behind (here a metrics file and the refusal of a
    checkpoint that does not fill the model), its row is the error, and the exit status is 1."""
    cause = ("mmvit_plugin.checkpoint.CheckpointError: 'x.pth' does not fit this model: "
             'decode_head: 24 tensors missing')

    def failing_evaluation(command, log_file, prefix):
        (log_file.parent / 'metrics.json').write_text(json.dumps({'mIoU': 42.42}))
        log_file.write_text(f'Traceback (most recent call last):\n  File "x", line 1\n{cause}\n')
        return 1

    from mmvit_plugin.benchmark import zoo_benchmark
    monkeypatch.setattr(zoo_benchmark, 'run_logged', failing_evaluation)
    data = toy_data('ade', 1, 1)
    ckpts = tmp_path / 'ckpts'
    ckpts.mkdir()
    (ckpts / 'upernet_cswin_toy.pth').write_bytes(b'not read by the fake evaluation')
    out = tmp_path / 'out'
    code = run_tool_main('benchmark_zoo', ['--data-root', data, '--checkpoints', ckpts,
                                           '--out-dir', out, '--configs', 'upernet_cswin_toy'])
    assert code == 1
    report = json.loads((out / 'results.json').read_text())
    assert [(r['status'], r['error']) for r in report['rows']] == [('error', cause)]
    assert 'measured' not in report['rows'][0]
    assert '42.42' not in (out / 'results.md').read_text() and 'decode_head: 24 tensors missing' \
        in (out / 'results.md').read_text()


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_markdown_table(bench):
    md = bench.markdown
    ok = bench.report['rows'][0]
    assert '| config | checkpoint | metric | measured | published | Δ | source | s / image |' in md
    assert (f'| `configs/toy/upernet_cswin_toy.py` | upernet_cswin_toy.pth | mIoU | '
            f'{ok["measured"]:.2f} | {PUBLISHED_MIOU:.1f} | {ok["delta"]:+.2f} | '
            '[A made-up paper](https://example.org/paper) |') in md
    assert '| broken_toy.pth | error | error: config mismatch' in md
    assert '- `configs/toy/mask_rcnn_cswin_toy.py`: no checkpoint' in md


# ---------------------------------------------------------------------------------------------
# The command line

def test_list_prints_the_name_map(capsys):
    assert run_tool_main('benchmark_zoo', ['--list']) == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if ' upernet_cswin_tiny.pth ' in line)
    assert line.startswith('upernet_cswin_t_ade20k ') and 'released (' in line


def test_bad_arguments_are_errors(tmp_path, capsys):
    assert run_tool_main('benchmark_zoo', ['--checkpoints', tmp_path]) == 2
    assert '--data-root' in capsys.readouterr().err
    assert run_tool_main('benchmark_zoo', ['--data-root', tmp_path / 'nowhere',
                                           '--checkpoints', tmp_path]) == 2
    assert 'nowhere: no such directory' in capsys.readouterr().err
    assert run_tool_main('benchmark_zoo', ['--data-root', tmp_path, '--checkpoints', tmp_path,
                                           '--launcher', 'slurm']) == 2
    assert '--launcher slurm needs --partition' in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--configs nothing_like_this: no config"):
        run_tool_main('benchmark_zoo', ['--data-root', tmp_path, '--checkpoints', tmp_path,
                                        '--configs', 'nothing_like_this'])
    with pytest.raises(SystemExit, match=f'error: metafile {tmp_path / "none.yaml"} not found'):
        run_tool_main('benchmark_zoo', ['--list', '--metafile', tmp_path / 'none.yaml'])
