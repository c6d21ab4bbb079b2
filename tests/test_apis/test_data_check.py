"""mmvit_plugin.apis.data_check: every dataset path a run reads, as mmengine joins them; what is
missing, with the config entries naming it, in one message. The CLI side (train.py, test.py,
benchmark_zoo.py stop before building anything): tests/test_tools/test_missing_dataset.py."""
import shutil
from pathlib import Path

import pytest
from mmengine.config import Config

from mmvit_plugin.apis.config import load_config
from mmvit_plugin.apis.data_check import (check_data, data_stages, missing_data,
                                          missing_data_message)

REPO = Path(__file__).resolve().parents[2]
ADE_CFG = REPO / 'configs' / 'upernet_cswin_t_ade20k.py'
SEG_TOY = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'
DET_TOY = REPO / 'configs' / 'toy' / 'mask_rcnn_cswin_toy.py'


def listed(message: str) -> dict:
    """The listed paths of a message: path -> the entries naming it."""
    lines = [line.strip() for line in message.splitlines() if line.startswith('  ')]
    return {path: entries[:-1].split('; ') for path, entries in
            (line.split('   (', 1) for line in lines)}


def test_missing_folders_of_an_ade_layout(toy_data, tmp_path):
    root = tmp_path / 'ade'
    shutil.copytree(toy_data('ade', 2, 2), root)
    shutil.rmtree(root / 'annotations' / 'validation')
    cfg = load_config(str(SEG_TOY), data_root=str(root))
    missing = f'{root}/annotations/validation'
    with pytest.raises(SystemExit) as info:
        check_data(cfg, 'train')  # training validates too
    assert listed(info.value.code) == {
        missing: ['val_dataloader.dataset.data_prefix.seg_map_path']}
    assert missing_data(cfg, ['test']) == {
        missing: ['test_dataloader.dataset.data_prefix.seg_map_path']}
    shutil.rmtree(root / 'images' / 'training')
    assert missing_data(cfg, ['train']) == {
        f'{root}/images/training': ['train_dataloader.dataset.data_prefix.img_path']}


@pytest.mark.parametrize('config, kind', [(SEG_TOY, 'ade'), (DET_TOY, 'coco')])
def test_the_toy_data_passes(toy_data, config, kind):
    cfg = load_config(str(config), data_root=str(toy_data(kind, 2, 2)))
    for stage in ('train', 'test'):
        check_data(cfg, stage)
        assert missing_data(cfg, data_stages(cfg, stage)) == {}


def test_wrapped_datasets_are_checked_through_the_wrapper(toy_data, tmp_path):
    cfg = Config.fromfile(str(SEG_TOY))
    ade = str(toy_data('ade', 2, 2))
    good = dict(cfg.train_dataloader.dataset, data_root=ade)
    gone = dict(good, data_root=str(tmp_path / 'gone'))
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2, dataset=dict(
        type='ConcatDataset', datasets=[good, gone]))
    cfg.val_dataloader.dataset = dict(cfg.val_dataloader.dataset, data_root=ade)
    assert missing_data(cfg, ['train', 'val']) == {
        str(tmp_path / 'gone'): ['train_dataloader.dataset.dataset.datasets[1].data_root']}


def test_unknown_and_remote_datasets_are_left_alone(tmp_path):
    cfg = Config.fromfile(str(SEG_TOY))
    gone = str(tmp_path / 'gone')
    real = dict(cfg.train_dataloader.dataset, data_root=gone)
    cfg.train_dataloader.dataset = dict(type='ConcatDataset', datasets=[
        dict(real, type='NoSuchDatasetKind'),  # what its paths mean is unknown here
        dict(real, data_root='s3://bucket/ade'),
        dict(real, backend_args=dict(backend='petrel')),
        real])
    assert missing_data(cfg, ['train']) == {
        gone: ['train_dataloader.dataset.datasets[3].data_root']}


def test_training_without_validation_reads_no_val_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an empty current directory: the relative data paths are missing
    cfg = Config.fromfile(str(ADE_CFG))
    assert data_stages(cfg, 'train') == ['train', 'val']
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    assert data_stages(cfg, 'train') == ['train']
    assert missing_data(cfg, ['train']) == {
        'data/ade/ADEChallengeData2016': ['train_dataloader.dataset.data_root']}


def test_message_names_paths_the_option_the_guides_and_the_demo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = missing_data_message('x reads a dataset that is not there; missing',
                                   {'data/coco/': ['a', 'b'], '/abs/ann.json': ['c']}, ['mmdet'],
                                   ['a hint'])
    assert message.startswith(f'error: x reads a dataset that is not there; missing (relative '
                              f'paths from {tmp_path}):')
    assert listed(message) == {'data/coco/': ['a', 'b'], '/abs/ann.json': ['c']}
    assert '--data-root DIR' in message and 'a hint' in message and '`make demo`' in message
    assert "mmdet's dataset preparation guide" in message and 'mmseg' not in message
