"""tools/make_toy_data.py: deterministic, in the layouts mmseg's ADE20K and mmdet's COCO readers use."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'make_toy_data.py'


def make(out, kind, *extra):
    subprocess.run([sys.executable, str(TOOL), '--kind', kind, '--out', str(out), '--train', '6',
                    '--val', '3', *extra], check=True, capture_output=True, text=True)


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob('*') if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_ade_layout_and_labels(tmp_path):
    make(tmp_path / 'ade', 'ade')
    for split, n in (('training', 6), ('validation', 3)):
        imgs = sorted((tmp_path / 'ade' / 'images' / split).glob('*.jpg'))
        anns = sorted((tmp_path / 'ade' / 'annotations' / split).glob('*.png'))
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
    make(tmp_path / 'coco', 'coco', '--mask-format', mask_format)
    for split in ('train2017', 'val2017'):
        ann_file = tmp_path / 'coco' / 'annotations' / f'instances_{split}.json'
        coco = COCO(str(ann_file))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == [
            'disc', 'square', 'triangle', 'star']
        assert len(coco.getImgIds()) == (6 if split == 'train2017' else 3)
        for img_id in coco.getImgIds():
            info = coco.loadImgs(img_id)[0]
            assert (tmp_path / 'coco' / split / info['file_name']).is_file()
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
    make(tmp_path / 'a', 'ade', '--seed', '3')
    make(tmp_path / 'b', 'ade', '--seed', '3')
    make(tmp_path / 'c', 'ade', '--seed', '4')
    assert digest(tmp_path / 'a') == digest(tmp_path / 'b')
    assert digest(tmp_path / 'a') != digest(tmp_path / 'c')
    make(tmp_path / 'd', 'coco', '--seed', '3')
    make(tmp_path / 'e', 'coco', '--seed', '3')
    assert digest(tmp_path / 'd') == digest(tmp_path / 'e')
    data = json.loads((tmp_path / 'd' / 'annotations' / 'instances_train2017.json').read_text())
    assert len({a['id'] for a in data['annotations']}) == len(data['annotations'])


def test_bad_arguments(tmp_path):
    res = subprocess.run([sys.executable, str(TOOL), '--kind', 'ade', '--out', str(tmp_path),
                          '--train', '0'], capture_output=True, text=True)
    assert res.returncode != 0 and '--train' in res.stderr
