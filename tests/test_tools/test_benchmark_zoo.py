"""tools/benchmark_zoo.py end to end on toy data (a toy checkpoint saved here, a metafile written
here with a made-up published figure), its pieces on their own, and the tools' ``--data-root``
(tools/train.py's set_data_root) on the toy configs and a real COCO config."""
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from checkpoint_files import save_code_running_pickle

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
TOOL = TOOLS / 'benchmark_zoo.py'
SEG_CFG = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'
DET_CFG = REPO / 'configs' / 'toy' / 'mask_rcnn_cswin_toy.py'
PUBLISHED_MIOU = 50.0  # made up: the toy configs have no published figure


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bz = load_module('benchmark_zoo', TOOL)
sys.path.insert(0, str(TOOLS))  # as the tools import it
import train as train_tool  # noqa: E402  (tools/train.py: load_config, set_data_root)


def run(*args, check=True):
    res = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True,
                         text=True)
    if check and res.returncode != 0:
        pytest.fail(f'{args[0]} exited {res.returncode}\n--- stdout ---\n{res.stdout[-4000:]}'
                    f'\n--- stderr ---\n{res.stderr[-6000:]}')
    return res


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
def bench(tmp_path_factory):
    """One benchmark run over four configs: one with a checkpoint, one broken config with a
    checkpoint, one whose checkpoint tools/test.py refuses (a pickle that runs code), one without
    a checkpoint; and tools/test.py on the first for comparison."""
    root = tmp_path_factory.mktemp('bench')
    data = root / 'ade'
    run(TOOLS / 'make_toy_data.py', '--kind', 'ade', '--out', data, '--train', '2', '--val', '3')
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
    res = run(TOOL, '--data-root', data, '--checkpoints', ckpts, '--metafile', metafile,
              '--out-dir', out, check=False)
    metrics_file = root / 'test_py_metrics.json'
    run(TOOLS / 'test.py', SEG_CFG, ckpts / 'upernet_cswin_toy.pth', '--data-root', data,
        '--work-dir', root / 'test_py', '--metrics-out', metrics_file)
    return SimpleNamespace(res=res, out=out, report=json.loads((out / 'results.json').read_text()),
                           markdown=(out / 'results.md').read_text(),
                           test_py=json.loads(metrics_file.read_text()),
                           code_ran=(root / 'code_ran').exists())


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


def test_measured_equals_test_py(bench):
    assert bench.report['rows'][0]['measured'] == round(bench.test_py['mIoU'], 2)


def test_delta_against_the_published_value(bench):
    ok = bench.report['rows'][0]
    assert ok['published'] == PUBLISHED_MIOU and ok['source'] == 'made-up'
    assert ok['delta'] == round(ok['measured'] - PUBLISHED_MIOU, 2)


def test_broken_config_is_an_error_row(bench):
    error = bench.report['rows'][1]
    assert 'config mismatch' in error['error'] and 'in_channels' in error['error']
    assert 'config mismatch' in Path(error['log']).read_text()


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


def test_a_failed_evaluation_never_shows_its_metrics(tmp_path, monkeypatch):
    """Whatever a failing tools/test.py left behind (here a metrics file and the refusal of a
    checkpoint that does not fill the model), its row is the error, and the exit status is 1."""
    cause = ("mmvit_plugin.checkpoint.CheckpointError: 'x.pth' does not fit this model: "
             'decode_head: 24 tensors missing')

    def failing_evaluation(command, log_file, prefix):
        (log_file.parent / 'metrics.json').write_text(json.dumps({'mIoU': 42.42}))
        log_file.write_text(f'Traceback (most recent call last):\n  File "x", line 1\n{cause}\n')
        return 1

    monkeypatch.setattr(bz, 'run_logged', failing_evaluation)
    data = tmp_path / 'ade'
    run(TOOLS / 'make_toy_data.py', '--kind', 'ade', '--out', data, '--train', '1', '--val', '1')
    ckpts = tmp_path / 'ckpts'
    ckpts.mkdir()
    (ckpts / 'upernet_cswin_toy.pth').write_bytes(b'not read by the fake evaluation')
    out = tmp_path / 'out'
    code = bz.main(['--data-root', str(data), '--checkpoints', str(ckpts), '--out-dir',
                    str(out), '--configs', 'upernet_cswin_toy'])
    assert code == 1
    report = json.loads((out / 'results.json').read_text())
    assert [(r['status'], r['error']) for r in report['rows']] == [('error', cause)]
    assert 'measured' not in report['rows'][0]
    assert '42.42' not in (out / 'results.md').read_text() and 'decode_head: 24 tensors missing' \
        in (out / 'results.md').read_text()


TORCHRUN_FAILURE = """\
[rank0]: Traceback (most recent call last):
[rank0]:   File "tools/test.py", line 178, in <module>
[rank0]:     raise CheckpointError(
[rank0]: mmvit_plugin.checkpoint.CheckpointError: 'x.pth' does not fit: decode_head: 24 tensors missing
E1207 04:37:51.788000 9548 api.py:1002] failed (exitcode: 1) local_rank: 0 (pid: 9557)
Traceback (most recent call last):
  File "torch/distributed/run.py", line 138, in __call__
    raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError: 
============================================================
tools/test.py FAILED
------------------------------------------------------------
  rank      : 0 (local_rank: 0)
  error_file: <N/A>
============================================================
"""


@pytest.mark.parametrize('log, cause', [
    ('loading\nerror: config mismatch: set in_channels\nTraceback\nValueError: later\n',
     'error: config mismatch: set in_channels'),
    (TORCHRUN_FAILURE, "mmvit_plugin.checkpoint.CheckpointError: 'x.pth' does not fit: "
                       'decode_head: 24 tensors missing'),
    ('just\nthe last line\n\n', 'the last line'),
], ids=['our-error-line', 'torchrun-worker-exception', 'last-line'])
def test_error_message_names_the_cause(tmp_path, log, cause):
    """Under torchrun the cause is the worker's exception (its lines prefixed with [rankN]:), not
    torchrun's ChildFailedError after it."""
    log_file = tmp_path / 'test.log'
    log_file.write_text(log)
    assert bz.error_message(log_file) == cause


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
# The pieces, without running tests

def zoo_model(releases):
    return bz.ZooModel(name='m', config=Path('configs/m_coco_1x.py'), collection='Mask R-CNN',
                       backbone='X', releases=releases)


def test_detection_metrics_in_points_against_the_matching_release():
    mmdet = bz.Release(metrics={'box AP': 42.7, 'mask AP': 39.3}, source='mmdet',
                       checkpoint='https://host/mmdet_1x.pth')
    official = bz.Release(metrics={'box AP': 43.7, 'mask AP': 39.8}, source='official',
                          checkpoint='https://host/official_1x.pth')
    model = zoo_model([mmdet, official])
    metrics = {'coco/bbox_mAP': 0.431, 'coco/segm_mAP': 0.395, 'coco/bbox_mAP_50': 0.6}
    own = bz.metric_rows(model, metrics, None, tta=False)  # a checkpoint trained here
    assert [(r['metric'], r['measured'], r['published'], r['delta']) for r in own] == [
        ('box AP', 43.1, 42.7, 0.4), ('mask AP', 39.5, 39.3, 0.2)]
    released = bz.metric_rows(model, metrics, official, tta=False)
    assert [(r['published'], r['source']) for r in released] == [(43.7, 'official'),
                                                                 (39.8, 'official')]
    # with --tta the box AP has no published counterpart
    assert [(r['metric'], r['published']) for r in bz.metric_rows(model, metrics, None, True)] \
        == [('box AP(TTA)', None)]


def test_segmentation_tta_compares_with_ms_flip():
    model = zoo_model([bz.Release(metrics={'mIoU': 44.5, 'mIoU(ms+flip)': 45.8}, source='s')])
    rows = bz.metric_rows(model, {'mIoU': 45.9, 'aAcc': 80.0}, None, tta=True)
    assert [(r['metric'], r['published'], r['delta']) for r in rows] == [
        ('mIoU(ms+flip)', 45.8, 0.1)]


def test_checkpoint_name_map_and_detectron2_releases(tmp_path):
    d2 = bz.Release(metrics={'box AP': 41.8}, source='s', checkpoint='https://h/retina_t_1x.pth',
                    checkpoint_format='Detectron2')
    model = zoo_model([d2])
    (tmp_path / 'retina_t_1x.pth').touch()
    found, notes, looked = bz.find_checkpoints(model, tmp_path)
    assert found == [] and looked == ['retina_t_1x.pth', 'm_coco_1x.pth']
    assert len(notes) == 1 and 'Detectron2' in notes[0] and 'does not load' in notes[0]
    (tmp_path / 'm_coco_1x.pth').touch()
    found, _, _ = bz.find_checkpoints(model, tmp_path)
    assert [(f.path.name, f.release) for f in found] == [('m_coco_1x.pth', None)]


def test_the_repository_metafile_maps_released_names():
    zoo = bz.load_zoo()
    names = zoo.checkpoint_map()
    model, release = names['upernet_cswin_tiny.pth']
    assert model.name == 'upernet_cswin_t_ade20k' and release.metrics['mIoU'] == 49.3
    assert names['upernet_cswin_t_ade20k.pth'] == (model, None)
    model, release = names['mask_rcnn_swin_tiny_patch4_window7_1x.pth']
    assert model.name == 'mask_rcnn_swin_t_coco_1x' and release.metrics['box AP'] == 43.7
    # a checkpoint trained with the 1x config is compared with the single-scale (mmdet) result
    assert model.published('box AP').metrics['box AP'] == 42.7


def bad_metafile(tmp_path, **changes):
    model = dict(Name='a', Config='configs/toy/upernet_cswin_toy.py', Results=[dict(
        Task='Semantic Segmentation', Dataset='ADE20K', Metrics={'mIoU': 1.0}, Source='s')])
    model.update(changes.pop('model', {}))
    doc = dict(Sources={'s': dict(Title='S', URL='https://s')}, Models=[model], **changes)
    path = tmp_path / 'meta.yaml'
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize('change, message', [
    (dict(model=dict(Results=[dict(Metrics={'mIOU': 1.0}, Source='s')])), "unknown metric 'mIOU'"),
    (dict(model=dict(Results=[dict(Metrics={'mIoU': 1.0}, Source='paper')])), "Source 'paper'"),
    (dict(model=dict(Results=[dict(Metrics={'mIoU': 'high'}, Source='s')])), 'must be a number'),
    (dict(model=dict(Name=None)), 'needs `Name:` and `Config:`'),
    (dict(model=dict(Config='configs/nowhere.py')), 'Config configs/nowhere.py does not exist'),
])
def test_metafile_errors_name_the_entry(tmp_path, change, message):
    with pytest.raises(bz.ZooError, match=re.escape(message)):
        bz.load_zoo(bad_metafile(tmp_path, **change))


def test_two_configs_claiming_one_file_name_is_an_error(tmp_path):
    release = dict(Task='Semantic Segmentation', Dataset='ADE20K', Metrics={'mIoU': 1.0},
                   Source='s', Checkpoint='https://h/shared.pth')
    doc = dict(Sources={'s': dict(Title='S', URL='https://s')}, Models=[
        dict(Name='a', Config='configs/toy/upernet_cswin_toy.py', Results=[release]),
        dict(Name='b', Config='configs/toy/mask_rcnn_cswin_toy.py', Results=[release])])
    path = tmp_path / 'meta.yaml'
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(bz.ZooError, match='shared.pth belongs to both a and b'):
        bz.load_zoo(path)


def test_launcher_commands(tmp_path):
    model = bz.load_zoo().models[0]
    args = bz.parse_args(['--data-root', str(tmp_path), '--checkpoints', str(tmp_path), '--tta',
                          '--launcher', 'pytorch', '--gpus', '4', '--cfg-options', 'a=1'])
    cmd = bz.evaluation_command(args, model, tmp_path / 'c.pth', tmp_path / 'run')
    assert cmd[:6] == ['bash', str(TOOLS / 'dist_test.sh'), str(model.config),
                       str(tmp_path / 'c.pth'), '4', '--data-root']
    assert cmd[-3:] == ['--tta', '--cfg-options', 'a=1']
    args = bz.parse_args(['--data-root', str(tmp_path), '--checkpoints', str(tmp_path),
                          '--launcher', 'slurm', '--partition', 'gpu', '--gpus', '16'])
    cmd = bz.evaluation_command(args, model, tmp_path / 'c.pth', tmp_path / 'run')
    assert cmd[:3] == ['srun', '-p', 'gpu'] and '--ntasks=16' in cmd
    assert '--ntasks-per-node=8' in cmd and cmd[-2:] == ['--launcher', 'slurm']
    assert str(TOOLS / 'test.py') in cmd
    with pytest.raises(SystemExit):
        bz.parse_args(['--data-root', str(tmp_path), '--checkpoints', str(tmp_path),
                       '--launcher', 'slurm'])  # no partition


def test_bad_arguments_are_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bz.parse_args(['--checkpoints', str(tmp_path)])
    assert '--data-root' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bz.parse_args(['--data-root', str(tmp_path / 'nowhere'), '--checkpoints', str(tmp_path)])
    assert 'nowhere: no such directory' in capsys.readouterr().err
    zoo = bz.load_zoo()
    with pytest.raises(SystemExit, match="--configs nothing_like_this: no config"):
        bz.select(zoo, ['nothing_like_this'])
    assert [m.name for m in bz.select(zoo, ['retinanet_*_1x'])] == [
        f'retinanet_mpvit_{a}_coco_1x' for a in ('t', 'xs', 's', 'b')]


# ---------------------------------------------------------------------------------------------
# --data-root (tools/train.py, used by tools/test.py and tools/benchmark_zoo.py)

def test_data_root_moves_every_loader_and_coco_annotation_file(tmp_path):
    cfg = train_tool.load_config(str(REPO / 'configs' / 'mask_rcnn_swin_t_coco_3x.py'),
                                 data_root=str(tmp_path))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.data_root == str(tmp_path)
    assert cfg.train_dataloader.dataset.ann_file == 'annotations/instances_train2017.json'
    for key in ('val_evaluator', 'test_evaluator'):
        assert cfg[key].ann_file == str(tmp_path / 'annotations' / 'instances_val2017.json')
    assert cfg.data_root == str(tmp_path)


@pytest.mark.parametrize('config', [SEG_CFG, DET_CFG], ids=['seg', 'det'])
def test_data_root_on_the_toy_configs(tmp_path, config):
    cfg = train_tool.load_config(str(config), data_root=str(tmp_path))
    roots = {cfg[k].dataset.data_root for k in ('train_dataloader', 'val_dataloader',
                                                'test_dataloader')}
    assert roots == {str(tmp_path)}
    if config == DET_CFG:
        assert cfg.test_evaluator.ann_file == str(tmp_path / 'annotations/instances_val2017.json')


def test_data_root_reaches_wrapped_datasets_and_cfg_options_win(tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(str(DET_CFG))
    inner = cfg.train_dataloader.dataset
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2, dataset=dict(
        type='MultiImageMixDataset', dataset=inner, pipeline=[]))
    cfg.val_dataloader.dataset = dict(type='ConcatDataset', datasets=[
        cfg.val_dataloader.dataset, dict(cfg.val_dataloader.dataset)])
    changed = train_tool.set_data_root(cfg, str(tmp_path))
    assert cfg.train_dataloader.dataset.dataset.dataset.data_root == str(tmp_path)
    assert [d.data_root for d in cfg.val_dataloader.dataset.datasets] == [str(tmp_path)] * 2
    assert 'data_root of 4 dataset(s)' in changed[0] and 'test_evaluator.ann_file' in changed[1]
    # --cfg-options come after --data-root, so an explicit entry wins
    ann = str(tmp_path / 'other.json')
    cfg = train_tool.load_config(str(DET_CFG), {'test_evaluator.ann_file': ann},
                                 data_root=str(tmp_path))
    assert cfg.test_evaluator.ann_file == ann


def test_data_root_errors(tmp_path):
    with pytest.raises(SystemExit, match='no such directory'):
        train_tool.load_config(str(SEG_CFG), data_root=str(tmp_path / 'missing'))
    from mmengine.config import Config
    cfg = Config.fromfile(str(SEG_CFG))
    other = dict(cfg.val_dataloader.dataset, data_root='elsewhere')
    cfg.val_dataloader.dataset = dict(type='ConcatDataset',
                                      datasets=[cfg.val_dataloader.dataset, other])
    with pytest.raises(SystemExit, match='reads datasets from 2 roots'):
        train_tool.set_data_root(cfg, str(tmp_path))


def test_measure_complexity_writes_get_flops_figures_into_the_metafile(tmp_path):
    """--measure-complexity: the metafile's measured lines become tools/get_flops.py's figures at
    the model's FLOPs Input; everything else in the file (comments too) stays."""
    metafile = tmp_path / 'meta.yaml'
    metafile.write_text('# a comment that stays\nSources: {}\nModels:\n'
                        '- Name: upernet_cswin_toy\n  In Collection: UperNet\n'
                        '  Config: configs/toy/upernet_cswin_toy.py\n  Metadata:\n'
                        '    Backbone: toy  # stays too\n    Parameters: null\n    FLOPs: 1\n'
                        '    FLOPs Input: [64, 96]\n  Results: []\n')
    zoo = bz.load_zoo(metafile)
    text = bz.measure_complexity(zoo, zoo.models)
    out = tmp_path / 'flops.json'  # the tool itself, in this process
    get_flops = load_module('get_flops', TOOLS / 'get_flops.py')
    assert get_flops.main([str(SEG_CFG), '--shape', '64', '96', '--json', str(out)]) == 0
    expected = json.loads(out.read_text())
    metafile.write_text(text)
    model = bz.load_zoo(metafile).models[0]
    assert model.metadata['Parameters'] == expected['params'] > 0
    assert model.metadata['FLOPs'] == expected['macs'] > 1
    assert model.metadata['FLOPs Input'] == [64, 96]
    assert text.startswith('# a comment that stays\n') and 'Backbone: toy  # stays too' in text
    with pytest.raises(bz.ZooError, match='no `FLOPs Input:` line'):
        bz._set_measured(text.replace('    FLOPs Input: [64, 96]\n', ''), 'upernet_cswin_toy',
                         dict(Parameters=1, FLOPs=2, input=[3, 4]), metafile)
