"""Grayscale, grayscale+alpha, RGBA, palette and 16-bit images in a dataset: the configs' loaders
turn every one into 3-channel 8-bit BGR (mmcv's color_type='color'), so the models train on
them; nothing is dropped."""
import json
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from PIL import Image

from mmvit_plugin.apis.toy_data import make_toy_data

REPO = Path(__file__).resolve().parents[2]
SEG_TOY = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'
DET_TOY = REPO / 'configs' / 'toy' / 'mask_rcnn_cswin_toy.py'


def convert(rgb: Image.Image, mode: str) -> Image.Image:
    if mode == 'I;16':  # 16-bit grayscale
        return Image.fromarray(np.asarray(rgb.convert('L'), dtype=np.uint16) * 257)
    if mode == 'P':
        return rgb.quantize(16)
    return rgb.convert(mode)


MODES = ['L', 'LA', 'RGBA', 'P', 'I;16', 'RGB', 'L', 'RGBA']  # one per toy training image


def make_toy(kind: str, root: Path) -> None:
    make_toy_data(kind, str(root), train=8, val=1)


def test_segmentation_images_of_every_mode_load_as_three_channels_and_train(tmp_path):
    from mmseg.registry import DATASETS, MODELS
    make_toy('ade', tmp_path)
    images = sorted((tmp_path / 'images' / 'training').glob('*.jpg'))
    assert len(images) == len(MODES)
    for path, mode in zip(images, MODES):
        convert(Image.open(path).convert('RGB'), mode).save(path.with_suffix('.png'))
        path.unlink()

    cfg = Config.fromfile(SEG_TOY)
    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(tmp_path),
                                  img_suffix='.png'))
    assert len(dataset) == len(MODES)
    items = [dataset[i] for i in range(len(dataset))]
    for item, mode in zip(items, MODES):
        assert item['inputs'].shape[0] == 3 and item['inputs'].dtype == torch.uint8, mode

    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    losses = model(**model.data_preprocessor(pseudo_collate(items), True), mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)


def test_detection_images_of_every_mode_load_as_three_channels(tmp_path):
    from mmdet.registry import DATASETS
    make_toy('coco', tmp_path)
    ann = tmp_path / 'annotations' / 'instances_train2017.json'
    data = json.loads(ann.read_text())
    for image, mode in zip(data['images'], MODES):
        path = tmp_path / 'train2017' / image['file_name']
        image['file_name'] = path.with_suffix('.png').name
        convert(Image.open(path).convert('RGB'), mode).save(path.with_suffix('.png'))
        path.unlink()
    ann.write_text(json.dumps(data))

    cfg = Config.fromfile(DET_TOY)
    init_default_scope('mmdet')
    import mmvit_plugin.datasets  # noqa: F401  (the config's custom_imports)
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=f'{tmp_path}/'))
    assert len(dataset) == len(data['images'])
    for i in range(len(dataset)):
        inputs = dataset[i]['inputs']
        assert inputs.shape[0] == 3 and inputs.dtype == torch.uint8
