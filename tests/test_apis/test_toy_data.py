"""mmvit_plugin.apis.toy_data: deterministic, in the layouts mmseg's ADE20K and mmdet's COCO
readers use. The command line: tests/test_tools/test_make_toy_data.py."""
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmvit_plugin.apis.toy_data import OBJECT_CLASSES, make_toy_data


def make(out: Path, kind: str, seed: int = 0, **options) -> Path:
    make_toy_data(kind, str(out), train=6, val=3, seed=seed, **options)
    return out


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob('*') if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_ade_layout_and_labels(tmp_path):
    root = make(tmp_path / 'ade', 'ade')
    for split, n in (('training', 6), ('validation', 3)):
        imgs = sorted((root / 'images' / split).glob('*.jpg'))
        anns = sorted((root / 'annotations' / split).glob('*.png'))
        assert len(imgs) == len(anns) == n
        assert [p.stem for p in imgs] == [p.stem for p in anns]
        for img_path, ann_path in zip(imgs, anns):
            img = cv2.imread(str(img_path))
            label = cv2.imread(str(ann_path), cv2.IMREAD_UNCHANGED)
            assert img.shape[:2] == label.shape and label.dtype == np.uint8 and label.ndim == 2
            # reduce_zero_label convention: 0 unlabelled, 1 background, 2..5 objects
            assert set(np.unique(label)) <= set(range(6)) and 1 in label
            assert (label >= 2).any(), 'every scene has objects'


@pytest.mark.parametrize('mask_format', ['polygon', 'rle'])
def test_coco_layout_and_masks(tmp_path, mask_format):
    from pycocotools.coco import COCO
    root = make(tmp_path / 'coco', 'coco', mask_format=mask_format)
    for split in ('train2017', 'val2017'):
        coco = COCO(str(root / 'annotations' / f'instances_{split}.json'))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(OBJECT_CLASSES)
        assert len(coco.getImgIds()) == (6 if split == 'train2017' else 3)
        for img_id in coco.getImgIds():
            info = coco.loadImgs(img_id)[0]
            assert (root / split / info['file_name']).is_file()
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
            assert anns, 'every image has instances'
            for ann in anns:
                mask = coco.annToMask(ann)
                x, y, w, h = ann['bbox']
                ys, xs = np.nonzero(mask)
                assert mask.sum() > 0 and ann['iscrowd'] == 0
                # the box encloses the (visible) mask
                assert xs.min() >= x - 1 and xs.max() <= x + w and ys.min() >= y - 1 and ys.max() <= y + h
                if mask_format == 'rle':
                    assert mask.sum() == ann['area']


def test_deterministic_by_seed(tmp_path):
    a, b, c = (make(tmp_path / name, 'ade', seed) for name, seed in (('a', 3), ('b', 3), ('c', 4)))
    assert digest(a) == digest(b) != digest(c)
    d, e = make(tmp_path / 'd', 'coco', 3), make(tmp_path / 'e', 'coco', 3)
    assert digest(d) == digest(e)
    data = json.loads((d / 'annotations' / 'instances_train2017.json').read_text())
    assert len({a['id'] for a in data['annotations']}) == len(data['annotations'])
