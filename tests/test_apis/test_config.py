"""mmvit_plugin.apis.config: ``--data-root`` on the toy configs and a real COCO config, checkpoint
URIs, ``--auto-scale-lr``; and the tools' shared argument types (mmvit_plugin.apis.cli)."""
import argparse
from pathlib import Path

import pytest
from mmengine.config import Config

from mmvit_plugin.apis.cli import parse_cfg_options, parse_size
from mmvit_plugin.apis.config import (check_scope, checkpoint_uri, enable_auto_scale_lr,
                                      load_config, set_data_root)

REPO = Path(__file__).resolve().parents[2]
SEG_CFG = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'
DET_CFG = REPO / 'configs' / 'toy' / 'mask_rcnn_cswin_toy.py'


def test_data_root_moves_every_loader_and_coco_annotation_file(tmp_path):
    cfg = load_config(str(REPO / 'configs' / 'mask_rcnn_swin_t_coco_3x.py'),
                      data_root=str(tmp_path))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.data_root == str(tmp_path)
    assert cfg.train_dataloader.dataset.ann_file == 'annotations/instances_train2017.json'
    for key in ('val_evaluator', 'test_evaluator'):
        assert cfg[key].ann_file == str(tmp_path / 'annotations' / 'instances_val2017.json')
    assert cfg.data_root == str(tmp_path)


@pytest.mark.parametrize('config', [SEG_CFG, DET_CFG], ids=['seg', 'det'])
def test_data_root_on_the_toy_configs(tmp_path, config):
    cfg = load_config(str(config), data_root=str(tmp_path))
    roots = {cfg[k].dataset.data_root for k in ('train_dataloader', 'val_dataloader',
                                                'test_dataloader')}
    assert roots == {str(tmp_path)}
    if config == DET_CFG:
        assert cfg.test_evaluator.ann_file == str(tmp_path / 'annotations/instances_val2017.json')


def test_data_root_reaches_wrapped_datasets_and_cfg_options_win(tmp_path):
    cfg = Config.fromfile(str(DET_CFG))
    inner = cfg.train_dataloader.dataset
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2, dataset=dict(
        type='MultiImageMixDataset', dataset=inner, pipeline=[]))
    cfg.val_dataloader.dataset = dict(type='ConcatDataset', datasets=[
        cfg.val_dataloader.dataset, dict(cfg.val_dataloader.dataset)])
    changed = set_data_root(cfg, str(tmp_path))
    assert cfg.train_dataloader.dataset.dataset.dataset.data_root == str(tmp_path)
    assert [d.data_root for d in cfg.val_dataloader.dataset.datasets] == [str(tmp_path)] * 2
    assert 'data_root of 4 dataset(s)' in changed[0] and 'test_evaluator.ann_file' in changed[1]
    # --cfg-options come after --data-root, so an explicit entry wins
    ann = str(tmp_path / 'other.json')
    cfg = load_config(str(DET_CFG), {'test_evaluator.ann_file': ann}, data_root=str(tmp_path))
    assert cfg.test_evaluator.ann_file == ann


def test_data_root_errors(tmp_path):
    with pytest.raises(SystemExit, match='no such directory'):
        load_config(str(SEG_CFG), data_root=str(tmp_path / 'missing'))
    cfg = Config.fromfile(str(SEG_CFG))
    other = dict(cfg.val_dataloader.dataset, data_root='elsewhere')
    cfg.val_dataloader.dataset = dict(type='ConcatDataset',
                                      datasets=[cfg.val_dataloader.dataset, other])
    with pytest.raises(SystemExit, match='reads datasets from 2 roots'):
        set_data_root(cfg, str(tmp_path))


def test_work_dir_and_missing_config(tmp_path):
    assert load_config(str(SEG_CFG)).work_dir == './work_dirs/upernet_cswin_toy'
    assert load_config(str(SEG_CFG), work_dir=str(tmp_path)).work_dir == str(tmp_path)
    with pytest.raises(SystemExit, match='not found'):
        load_config(str(tmp_path / 'nope.py'))
    check_scope(load_config(str(DET_CFG)), 'det')
    with pytest.raises(SystemExit, match="default_scope is None; expected one of"):
        check_scope(Config(dict()), 'plain.py')


def test_checkpoint_uris_pass_through():
    """train.py --resume, test.py and infer.py CKPT: a URI goes to mmengine's CheckpointLoader as
    given; a local path is checked (and ~ expanded)."""
    for uri in ('https://host/x.pth', 'http://127.0.0.1:8000/x.pth', 's3://bucket/x.pth',
                'open-mmlab://resnet50_v1c'):
        assert checkpoint_uri(uri, '--resume') == uri
    with pytest.raises(SystemExit, match='--resume nope.pth: no such checkpoint file'):
        checkpoint_uri('nope.pth', '--resume')


def test_auto_scale_lr_needs_the_config_entry():
    cfg = Config(dict(auto_scale_lr=dict(enable=False, base_batch_size=16)))
    enable_auto_scale_lr(cfg)
    assert cfg.auto_scale_lr.enable is True
    with pytest.raises(SystemExit, match='--auto-scale-lr needs auto_scale_lr = dict'):
        enable_auto_scale_lr(Config(dict()))


def test_parse_size_and_cfg_options():
    assert parse_size('480x640') == (480, 640) and parse_size('97X131') == (97, 131)
    for bad, message in (('640', 'expected HEIGHTxWIDTH'), ('12by5', 'expected HEIGHTxWIDTH'),
                         ('0x64', 'sizes must be positive')):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse_size(bad)
    assert parse_cfg_options(['a=1', 'b.c=[1,2]']) == {'a': 1, 'b.c': [1, 2]}
    assert parse_cfg_options(None) == {}
