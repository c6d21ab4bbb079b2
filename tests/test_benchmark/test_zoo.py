"""mmvit_plugin.benchmark.zoo: the metafile read and checked, the checkpoint name map. The
benchmark: test_zoo_benchmark.py; docs and complexity: test_zoo_docs.py; the command line:
tests/test_tools/test_benchmark_zoo.py."""
import re
from pathlib import Path

import pytest
import yaml

from mmvit_plugin.benchmark.zoo import (Release, ZooError, ZooModel, find_checkpoints, load_zoo,
                                         select)


def zoo_model(releases):
    return ZooModel(name='m', config=Path('configs/m_coco_1x.py'), collection='Mask R-CNN',
                    backbone='X', releases=releases)


def test_checkpoint_name_map_and_detectron2_releases(tmp_path):
    d2 = Release(metrics={'box AP': 41.8}, source='s', checkpoint='https://h/retina_t_1x.pth',
                    checkpoint_format='Detectron2')
    model = zoo_model([d2])
    (tmp_path / 'retina_t_1x.pth').touch()
    found, notes, looked = find_checkpoints(model, tmp_path)
    assert found == [] and looked == ['retina_t_1x.pth', 'm_coco_1x.pth']
    assert len(notes) == 1 and 'Detectron2' in notes[0] and 'does not load' in notes[0]
    (tmp_path / 'm_coco_1x.pth').touch()
    found, _, _ = find_checkpoints(model, tmp_path)
    assert [(f.path.name, f.release) for f in found] == [('m_coco_1x.pth', None)]


def test_the_repository_metafile_maps_released_names():
    zoo = load_zoo()
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
    with pytest.raises(ZooError, match=re.escape(message)):
        load_zoo(bad_metafile(tmp_path, **change))


def test_two_configs_claiming_one_file_name_is_an_error(tmp_path):
    release = dict(Task='Semantic Segmentation', Dataset='ADE20K', Metrics={'mIoU': 1.0},
                   Source='s', Checkpoint='https://h/shared.pth')
    doc = dict(Sources={'s': dict(Title='S', URL='https://s')}, Models=[
        dict(Name='a', Config='configs/toy/upernet_cswin_toy.py', Results=[release]),
        dict(Name='b', Config='configs/toy/mask_rcnn_cswin_toy.py', Results=[release])])
    path = tmp_path / 'meta.yaml'
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ZooError, match='shared.pth belongs to both a and b'):
        load_zoo(path)


def test_select_globs_on_config_names():
    zoo = load_zoo()
    with pytest.raises(SystemExit, match="--configs nothing_like_this: no config"):
        select(zoo, ['nothing_like_this'])
    assert [m.name for m in select(zoo, ['retinanet_*_1x'])] == [
        f'retinanet_mpvit_{a}_coco_1x' for a in ('t', 'xs', 's', 'b')]
    assert select(zoo, None) == zoo.models


@pytest.mark.parametrize('name, official, mm', [
    ('upernet_swin_t_ade20k', ('swin-seg', 44.51), ('mmseg-swin', 44.41)),
    ('upernet_swin_s_ade20k', ('swin-seg', 47.64), ('mmseg-swin', 47.72)),
    ('upernet_swin_b_ade20k', ('swin-seg', 48.13), ('mmseg-swin', 47.99)),
    ('mask_rcnn_swin_s_coco_3x', ('swin-det', 48.5), ('mmdet-swin', 48.2)),
])
def test_swin_configs_list_the_official_and_the_mm_reference(name, official, mm):
    """Where the official repository and mmseg / mmdet both publish a Swin result of a config's
    recipe, both are listed, the official one first (the reference of a checkpoint trained here),
    and each released file is compared with its own figure."""
    zoo = load_zoo()
    model = next(m for m in zoo.models if m.name == name)
    label = 'mIoU' if name.startswith('upernet') else 'box AP'
    assert [(r.source, r.metrics[label]) for r in model.releases] == [official, mm]
    assert model.published(label).source == official[0]
    names = zoo.checkpoint_map()
    for release in model.releases:
        assert names[release.file_name] == (model, release)


def test_query_head_rows_and_the_cascade_1x_release():
    zoo = load_zoo()
    by_name = {m.name: m for m in zoo.models}
    panoptic = by_name['mask2former_swin_t_coco_panoptic'].releases
    assert [(r.source, r.metrics) for r in panoptic] == [
        ('mmdet-mask2former', {'PQ': 53.4, 'box AP': 46.3, 'mask AP': 43.4})]
    assert by_name['mask2former_swin_l_in22k_ade20k_640'].published('mIoU').metrics['mIoU'] == 56.01
    assert by_name['mask2former_cswin_t_ade20k'].releases == []  # no published figure
    assert all(not m.releases for m in zoo.models if m.name.startswith('dino_'))
    model, release = zoo.checkpoint_map()['cascade_mask_rcnn_swin_tiny_patch4_window7_1x.pth']
    assert model.name == 'cascade_mask_rcnn_swin_t_coco_1x'
    assert (release.source, release.metrics) == ('swin-det', {'box AP': 48.1, 'mask AP': 41.7})
