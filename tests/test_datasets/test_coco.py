"""COCO images without annotations: left out of training with a logged warning (the recipe's
filter_cfg), trained on as pure negatives when the filter is off, and evaluated at test time."""
import json
from pathlib import Path
from unittest import mock

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

import mmvit_plugin.datasets.coco as coco_module
from mmvit_plugin.apis.toy_data import make_toy_data

REPO = Path(__file__).resolve().parents[2]
DET_TOY = REPO / 'configs' / 'toy' / 'mask_rcnn_cswin_toy.py'


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    """Toy COCO whose 2nd and 5th train images and 2nd val image have no annotations."""
    root = tmp_path_factory.mktemp('coco')
    make_toy_data('coco', str(root), train=6, val=3, mask_format='rle')
    for split, positions in (('train2017', (1, 4)), ('val2017', (1, ))):
        path = root / 'annotations' / f'instances_{split}.json'
        data = json.loads(path.read_text())
        empty = {data['images'][i]['id'] for i in positions}
        assert any(a['image_id'] in empty for a in data['annotations'])
        data['annotations'] = [a for a in data['annotations'] if a['image_id'] not in empty]
        path.write_text(json.dumps(data))
    return root


def config(coco):
    cfg = Config.fromfile(DET_TOY)
    init_default_scope(cfg.default_scope)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = f'{coco}/'
    return cfg


def build_dataset(dataset_cfg):
    from mmdet.registry import DATASETS
    return DATASETS.build(dataset_cfg)


def test_training_set_logs_the_images_it_leaves_out(coco):
    cfg = config(coco)
    assert cfg.train_dataloader.dataset.type == 'ReportingCocoDataset'
    with mock.patch.object(coco_module, 'print_log') as log:
        dataset = build_dataset(cfg.train_dataloader.dataset)
    assert len(dataset) == 4
    message = log.call_args.args[0]
    assert '2 of 6 images left out of training' in message
    assert '2 without annotations' in message and '000000000002.jpg' in message
    assert '000000000005.jpg' in message


def test_nothing_is_logged_when_nothing_is_left_out(coco):
    cfg = config(coco)
    cfg.train_dataloader.dataset.filter_cfg = dict(filter_empty_gt=False, min_size=0)
    with mock.patch.object(coco_module, 'print_log') as log:
        assert len(build_dataset(cfg.train_dataloader.dataset)) == 6
    log.assert_not_called()


def test_images_without_annotations_train_as_negatives(coco):
    from mmdet.registry import MODELS
    cfg = config(coco)
    cfg.train_dataloader.dataset.filter_cfg = dict(filter_empty_gt=False)
    dataset = build_dataset(cfg.train_dataloader.dataset)
    empty = [i for i in range(len(dataset)) if len(dataset[i]['data_samples'].gt_instances) == 0]
    assert len(empty) == 2
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    data = model.data_preprocessor(pseudo_collate([dataset[i] for i in empty]), True)
    losses = model(**data, mode='loss')
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_images_without_annotations_are_evaluated(coco):
    """A confident detection on the image without annotations is a false positive: AP drops."""
    from mmdet.evaluation import CocoMetric
    ann_file = coco / 'annotations' / 'instances_val2017.json'
    data = json.loads(ann_file.read_text())
    label_of = {c['id']: i for i, c in enumerate(sorted(data['categories'], key=lambda c: c['id']))}

    def bbox_map(false_positive: bool) -> float:
        metric = CocoMetric(ann_file=str(ann_file), metric='bbox')
        metric.dataset_meta = dict(classes=[c['name'] for c in data['categories']])
        for image in data['images']:
            anns = [a for a in data['annotations'] if a['image_id'] == image['id']]
            boxes = [[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)]
            labels = [label_of[a['category_id']] for a in anns]
            if not anns and false_positive:
                boxes, labels = [[10., 10., 60., 60.]], [label_of[data['categories'][0]['id']]]
            scores = torch.full((len(boxes), ), 1.0 if not anns else 0.5)  # the false one ranks first
            pred = dict(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        scores=scores, labels=torch.tensor(labels, dtype=torch.long))
            metric.process({}, [dict(img_id=image['id'], ori_shape=(image['height'], image['width']),
                                     pred_instances=pred)])
        return metric.compute_metrics(metric.results)['bbox_mAP']

    val = build_dataset(config(coco).val_dataloader.dataset)
    assert len(val) == 3  # test_mode keeps the image without annotations
    assert sum(len(val[i]['data_samples'].gt_instances) == 0 for i in range(3)) == 1
    assert bbox_map(False) == pytest.approx(1.0)
    assert bbox_map(True) < 1.0
