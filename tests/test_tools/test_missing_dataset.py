"""A dataset that is not there: tools/train.py, tools/test.py and tools/benchmark_zoo.py stop before
building anything, with one message listing every missing path and the config entry naming it,
``--data-root``, where mmseg / mmdet document the datasets and ``make demo``. The real configs run
from an empty directory, so their relative data paths are missing whatever this checkout holds.
(The check itself: tests/test_apis/test_data_check.py.)"""
import os
from pathlib import Path

import pytest
import yaml

from tool_cli import REPO, run_tool, run_tool_main

ADE_CFG = REPO / 'configs' / 'upernet_cswin_t_ade20k.py'
COCO_CFG = REPO / 'configs' / 'mask_rcnn_swin_t_coco_1x.py'
SEG_TOY = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'
DET_TOY = REPO / 'configs' / 'toy' / 'mask_rcnn_cswin_toy.py'
MMSEG_DOCS = 'https://mmsegmentation.readthedocs.io/en/latest/user_guides/2_dataset_prepare.html'
MMDET_DOCS = 'https://mmdetection.readthedocs.io/en/latest/user_guides/dataset_prepare.html'


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    """An empty current directory (no data/ here), LOCAL_RANK restored after a tool sets it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('LOCAL_RANK', '0')
    return tmp_path


def exit_message(tool, argv) -> str:
    with pytest.raises(SystemExit) as info:
        run_tool_main(tool, argv)
    assert isinstance(info.value.code, str), 'a message, not a bare exit status'
    return info.value.code


def listed(message: str) -> dict:
    """The listed paths of a message: path -> the entries naming it."""
    lines = [line.strip() for line in message.splitlines() if line.startswith('  ')]
    return {path: entries[:-1].split('; ') for path, entries in
            (line.split('   (', 1) for line in lines)}


def test_readme_command_without_ade20k(tmp_path):
    env = dict(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')])))
    res = run_tool('train', ADE_CFG, cwd=tmp_path, env=env, check=False)
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
    message = exit_message('test', [COCO_CFG, ckpt])
    assert listed(message) == {
        'data/coco/': ['test_dataloader.dataset.data_root'],
        'data/coco/annotations/instances_val2017.json': ['test_evaluator.ann_file']}
    assert MMDET_DOCS in message and '--data-root DIR' in message and MMSEG_DOCS not in message


def test_data_root_without_the_dataset_in_it(empty_cwd):
    """--data-root names a folder that exists but holds no COCO: every file and folder the
    loaders and evaluators read under it, as mmengine joins them."""
    root = empty_cwd / 'coco'
    root.mkdir()
    message = exit_message('train', [COCO_CFG, '--data-root', root])
    assert listed(message) == {
        f'{root}/annotations/instances_train2017.json': ['train_dataloader.dataset.ann_file'],
        f'{root}/train2017/': ['train_dataloader.dataset.data_prefix.img'],
        f'{root}/annotations/instances_val2017.json': [
            'val_dataloader.dataset.ann_file', 'val_evaluator.ann_file'],
        f'{root}/val2017/': ['val_dataloader.dataset.data_prefix.img']}
    assert 'relative paths' not in message


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
    return ['--data-root', data_root, '--checkpoints', ckpts, '--metafile', metafile,
            '--out-dir', tmp_path / 'out']


@pytest.fixture
def no_evaluation(monkeypatch):
    """tools/test.py is never run: a run would be a failed test."""
    from mmvit_plugin.benchmark import zoo_benchmark
    monkeypatch.setattr(zoo_benchmark, 'run_logged',
                        lambda *args: pytest.fail('a config was evaluated'))


def test_benchmark_stops_before_any_run_without_the_data(tmp_path, no_evaluation):
    empty = tmp_path / 'ade'
    empty.mkdir()
    seg_b = tmp_path / 'upernet_b_toy.py'
    seg_b.write_text(f"_base_ = ['{SEG_TOY}']\n")
    message = exit_message('benchmark_zoo', zoo_run(tmp_path, empty,
                                                    {'seg_a': SEG_TOY, 'seg_b': seg_b}))
    assert message.startswith('error: the test data of 2 of the 2 config(s) with a checkpoint is '
                              f'not under --data-root {empty} (nothing was run); missing:')
    assert listed(message) == {
        f'{empty}/images/validation': [
            'test_dataloader.dataset.data_prefix.img_path of upernet_cswin_toy, upernet_b_toy'],
        f'{empty}/annotations/validation': [
            'test_dataloader.dataset.data_prefix.seg_map_path of upernet_cswin_toy, upernet_b_toy']}
    assert MMSEG_DOCS in message and '--configs PATTERN' not in message
    assert not (tmp_path / 'out' / 'runs').exists()


def test_benchmark_with_configs_of_another_dataset(toy_data, tmp_path, no_evaluation):
    ade = toy_data('ade', 2, 2)
    message = exit_message('benchmark_zoo', zoo_run(tmp_path, ade,
                                                    {'seg': SEG_TOY, 'det': DET_TOY}))
    assert 'the test data of 1 of the 2 config(s)' in message
    assert set(listed(message)) == {f'{ade}/annotations/instances_val2017.json', f'{ade}/val2017/'}
    assert '--configs PATTERN picks the configs whose dataset is there' in message
    assert MMDET_DOCS in message and MMSEG_DOCS not in message
