"""A dataset that is not there: tools/train.py, tools/test.py and tools/benchmark_zoo.py stop before
building anything, with one message listing every missing path and the config entry naming it,
``--data-root``, where mmseg / mmdet document the datasets and ``make demo`` (tools/train.py's
check_data). The real configs run from an empty directory, so their relative data paths are
missing whatever this checkout holds."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
ADE_CFG = REPO / 'configs' / 'upernet_cswin_t_ade20k.py'
COCO_CFG = REPO / 'configs' / 'mask_rcnn_swin_t_coco_1x.py'
SEG_TOY = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'
DET_TOY = REPO / 'configs' / 'toy' / 'mask_rcnn_cswin_toy.py'
MMSEG_DOCS = 'https://mmsegmentation.readthedocs.io/en/latest/user_guides/2_dataset_prepare.html'
MMDET_DOCS = 'https://mmdetection.readthedocs.io/en/latest/user_guides/dataset_prepare.html'


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'data_check_{name}', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sys.path.insert(0, str(TOOLS))  # as the tools import it
import train  # noqa: E402  (tools/train.py)

test_tool = load_tool('test')
bz = load_tool('benchmark_zoo')


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy')
    for kind in ('ade', 'coco'):
        subprocess.run([sys.executable, str(TOOLS / 'make_toy_data.py'), '--kind', kind, '--out',
                        str(root / kind), '--train', '2', '--val', '2'], check=True,
                       capture_output=True)
    return root


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    """An empty current directory (no data/ here), LOCAL_RANK restored after main() sets it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('LOCAL_RANK', '0')
    return tmp_path


def exit_message(main, argv) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert isinstance(info.value.code, str), 'a message, not a bare exit status'
    return info.value.code


def listed(message: str) -> dict:
    """The listed paths of a message: path -> the entries naming it."""
    lines = [line.strip() for line in message.splitlines() if line.startswith('  ')]
    return {path: entries[:-1].split('; ') for path, entries in
            (line.split('   (', 1) for line in lines)}


def test_readme_command_without_ade20k(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        str(REPO), os.environ.get('PYTHONPATH')])))
    res = subprocess.run([sys.executable, str(TOOLS / 'train.py'), str(ADE_CFG)], cwd=tmp_path,
                         capture_output=True, text=True, env=env)
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-4000:]
    assert 'Traceback' not in res.stderr
    assert listed(res.stderr) == {'data/ade/ADEChallengeData2016': [
        'train_dataloader.dataset.data_root', 'val_dataloader.dataset.data_root']}
    assert (f'reads a dataset that is not there; missing (relative paths from {tmp_path}):'
            in res.stderr)
    for text in ('--data-root DIR', 'docs/en/user_guides/2_dataset_prepare.md', MMSEG_DOCS,
                 '`make demo`'):
        assert text in res.stderr
    assert MMDET_DOCS not in res.stderr
    assert not (tmp_path / 'work_dirs').exists(), 'stopped before the runner was built'


def test_test_py_reads_the_test_loader_and_evaluator(empty_cwd):
    ckpt = empty_cwd / 'model.pth'
    ckpt.write_bytes(b'not read: the data is checked first')
    message = exit_message(test_tool.main, [str(COCO_CFG), str(ckpt)])
    assert listed(message) == {
        'data/coco/': ['test_dataloader.dataset.data_root'],
        'data/coco/annotations/instances_val2017.json': ['test_evaluator.ann_file']}
    assert MMDET_DOCS in message and '--data-root DIR' in message and MMSEG_DOCS not in message


def test_data_root_without_the_dataset_in_it(empty_cwd):
    """--data-root names a folder that exists but holds no COCO: every file and folder the
    loaders and evaluators read under it, as mmengine joins them."""
    root = empty_cwd / 'coco'
    root.mkdir()
    message = exit_message(train.main, [str(COCO_CFG), '--data-root', str(root)])
    assert listed(message) == {
        f'{root}/annotations/instances_train2017.json': ['train_dataloader.dataset.ann_file'],
        f'{root}/train2017/': ['train_dataloader.dataset.data_prefix.img'],
        f'{root}/annotations/instances_val2017.json': [
            'val_dataloader.dataset.ann_file', 'val_evaluator.ann_file'],
        f'{root}/val2017/': ['val_dataloader.dataset.data_prefix.img']}
    assert 'relative paths' not in message


def test_missing_folders_of_an_ade_layout(toy, tmp_path):
    root = tmp_path / 'ade'
    shutil.copytree(toy / 'ade', root)
    shutil.rmtree(root / 'annotations' / 'validation')
    cfg = train.load_config(str(SEG_TOY), data_root=str(root))
    missing = f'{root}/annotations/validation'
    with pytest.raises(SystemExit) as info:
        train.check_data(cfg, 'train')  # training validates too
    assert listed(info.value.code) == {
        missing: ['val_dataloader.dataset.data_prefix.seg_map_path']}
    assert train.missing_data(cfg, ['test']) == {
        missing: ['test_dataloader.dataset.data_prefix.seg_map_path']}
    shutil.rmtree(root / 'images' / 'training')
    assert train.missing_data(cfg, ['train']) == {
        f'{root}/images/training': ['train_dataloader.dataset.data_prefix.img_path']}


@pytest.mark.parametrize('config, kind', [(SEG_TOY, 'ade'), (DET_TOY, 'coco')])
def test_the_toy_data_passes(toy, config, kind):
    cfg = train.load_config(str(config), data_root=str(toy / kind))
    for stage in ('train', 'test'):
        train.check_data(cfg, stage)
        assert train.missing_data(cfg, train.data_stages(cfg, stage)) == {}


def test_wrapped_datasets_are_checked_through_the_wrapper(toy, tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(str(SEG_TOY))
    good = dict(cfg.train_dataloader.dataset, data_root=str(toy / 'ade'))
    gone = dict(good, data_root=str(tmp_path / 'gone'))
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2, dataset=dict(
        type='ConcatDataset', datasets=[good, gone]))
    cfg.val_dataloader.dataset = dict(cfg.val_dataloader.dataset, data_root=str(toy / 'ade'))
    assert train.missing_data(cfg, ['train', 'val']) == {
        str(tmp_path / 'gone'): ['train_dataloader.dataset.dataset.datasets[1].data_root']}


def test_unknown_and_remote_datasets_are_left_alone(toy, tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(str(SEG_TOY))
    gone = str(tmp_path / 'gone')
    real = dict(cfg.train_dataloader.dataset, data_root=gone)
    cfg.train_dataloader.dataset = dict(type='ConcatDataset', datasets=[
        dict(real, type='NoSuchDatasetKind'),  # what its paths mean is unknown here
        dict(real, data_root='s3://bucket/ade'),
        dict(real, backend_args=dict(backend='petrel')),
        real])
    assert train.missing_data(cfg, ['train']) == {
        gone: ['train_dataloader.dataset.datasets[3].data_root']}


def test_training_without_validation_reads_no_val_data(empty_cwd):
    from mmengine.config import Config
    cfg = Config.fromfile(str(ADE_CFG))
    assert train.data_stages(cfg, 'train') == ['train', 'val']
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    assert train.data_stages(cfg, 'train') == ['train']
    assert train.missing_data(cfg, ['train']) == {
        'data/ade/ADEChallengeData2016': ['train_dataloader.dataset.data_root']}


# ---------------------------------------------------------------------------------------------
# tools/benchmark_zoo.py: one error before the first run, not one failed row per config

def zoo_run(tmp_path, data_root, configs):
    """A metafile of ``configs`` (name -> config), a checkpoint for each; the benchmark's argv."""
    ckpts = tmp_path / 'ckpts'
    ckpts.mkdir()
    for name in configs:
        (ckpts / f'{Path(configs[name]).stem}.pth').write_bytes(b'never read')
    metafile = tmp_path / 'meta.yaml'
    metafile.write_text(yaml.safe_dump(dict(Sources={}, Models=[
        dict(Name=name, Config=str(config), Results=[]) for name, config in configs.items()])))
    return ['--data-root', str(data_root), '--checkpoints', str(ckpts), '--metafile',
            str(metafile), '--out-dir', str(tmp_path / 'out')]


def test_benchmark_stops_before_any_run_without_the_data(tmp_path, monkeypatch):
    def no_runs(*args):
        raise AssertionError('a config was evaluated')
    monkeypatch.setattr(bz, 'run_logged', no_runs)
    empty = tmp_path / 'ade'
    empty.mkdir()
    seg_b = tmp_path / 'upernet_b_toy.py'
    seg_b.write_text(f"_base_ = ['{SEG_TOY}']\n")
    argv = zoo_run(tmp_path, empty, {'seg_a': SEG_TOY, 'seg_b': seg_b})
    message = exit_message(bz.main, argv)
    assert message.startswith('error: the test data of 2 of the 2 config(s) with a checkpoint is '
                              f'not under --data-root {empty} (nothing was run); missing:')
    assert listed(message) == {
        f'{empty}/images/validation': [
            'test_dataloader.dataset.data_prefix.img_path of upernet_cswin_toy, upernet_b_toy'],
        f'{empty}/annotations/validation': [
            'test_dataloader.dataset.data_prefix.seg_map_path of upernet_cswin_toy, upernet_b_toy']}
    assert MMSEG_DOCS in message and '--configs PATTERN' not in message
    assert not (tmp_path / 'out' / 'runs').exists()


def test_benchmark_with_configs_of_another_dataset(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(bz, 'run_logged', lambda *args: pytest.fail('a config was evaluated'))
    argv = zoo_run(tmp_path, toy / 'ade', {'seg': SEG_TOY, 'det': DET_TOY})
    message = exit_message(bz.main, argv)
    assert 'the test data of 1 of the 2 config(s)' in message
    assert set(listed(message)) == {f'{toy / "ade"}/annotations/instances_val2017.json',
                                    f'{toy / "ade"}/val2017/'}
    assert '--configs PATTERN picks the configs whose dataset is there' in message
    assert MMDET_DOCS in message and MMSEG_DOCS not in message
