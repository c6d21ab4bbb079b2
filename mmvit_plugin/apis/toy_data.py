"""Small, deterministic toy datasets in the layouts mmseg's ADE20K and mmdet's COCO readers use
(``make demo``, the tests, and anyone trying the tools without a download).

Scenes are drawn procedurally (numpy + OpenCV only): a textured background (smooth colour noise,
grain, faint stripes) with several objects of four classes, each with its own shape and texture
(colours overlap between classes on purpose, so texture and shape matter), in varied sizes and
rotations, overlapping one another (painter's order: later objects occlude earlier ones), plus
unlabelled clutter blobs.

ADE20K layout (``kind='ade'``), read by ``BaseSegDataset``/``ADE20KDataset`` with
``reduce_zero_label=True``::

    ROOT/images/{training,validation}/toy_XXXXX.jpg
    ROOT/annotations/{training,validation}/toy_XXXXX.png   # uint8: 0 = unlabelled (ignored),
                                                           # 1 = background, 2.. = object classes

COCO layout (``kind='coco'``), read by ``CocoDataset``::

    ROOT/train2017/XXXXXXXXXXXX.jpg, ROOT/val2017/...
    ROOT/annotations/instances_{train,val}2017.json        # visible-part masks as polygons or RLE

Every image depends only on (seed, split, index), so a dataset is reproducible byte for byte and
a larger dataset starts with the images of a smaller one.
"""
import json
import os
from typing import Dict, List, Tuple

import cv2
import numpy as np

#: Object classes shared by both datasets (detection categories 1..4 in this order).
OBJECT_CLASSES = ('disc', 'square', 'triangle', 'star')
#: Segmentation classes: index i is written as label i + 1 (label 0 = unlabelled, ignored).
SEG_CLASSES = ('background', ) + OBJECT_CLASSES
SEG_PALETTE = [[120, 120, 120], [220, 60, 60], [60, 180, 75], [65, 105, 225], [240, 200, 40]]
COCO_PALETTE = [tuple(c) for c in SEG_PALETTE[1:]]

SPLITS = {'ade': {'train': 'training', 'val': 'validation'},
          'coco': {'train': 'train2017', 'val': 'val2017'}}


# ------------------------------------------------------------------------------------------------
# drawing
# ------------------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1] of shape (size, size)."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _random_colour(rng: np.random.Generator, hue: Tuple[int, int]) -> np.ndarray:
    """An RGB colour (float 0..255) with hue in ``hue`` (OpenCV hue units 0..179, may wrap)."""
    h = int(rng.integers(hue[0], hue[1])) % 180
    s = int(rng.integers(90, 256))
    v = int(rng.integers(110, 256))
    hsv = np.uint8([[[h, s, v]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _coords(size: int, angle: float) -> Tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    return x * c + y * s, -x * s + y * c


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Textured background: two colours mixed by smooth noise, faint stripes, grain."""
    a = _random_colour(rng, (0, 180)) * rng.uniform(0.4, 0.9)
    b = _random_colour(rng, (0, 180)) * rng.uniform(0.4, 0.9)
    t = _smooth_noise(rng, size, int(rng.integers(2, 6)))[..., None]
    img = a * t + b * (1 - t)
    u, _ = _coords(size, rng.uniform(0, np.pi))
    img += 12 * np.sin(u / rng.uniform(3, 9))[..., None]
    img += rng.normal(0, 10, img.shape)
    return img


# Each class: (hue range it usually takes, texture). Hue ranges overlap between classes.
CLASS_STYLE = {
    'disc': ((-10, 40), 'radial'),
    'square': ((20, 80), 'checker'),
    'triangle': ((70, 130), 'stripes'),
    'star': ((110, 190), 'dots'),
}


def texture(rng: np.random.Generator, kind: str, size: int, colour: np.ndarray,
            centre: Tuple[float, float], radius: float) -> np.ndarray:
    """A full-size (size, size, 3) float texture of the given kind around ``centre``."""
    second = colour * rng.uniform(0.35, 0.6)
    u, v = _coords(size, rng.uniform(0, np.pi))
    if kind == 'checker':
        p = rng.uniform(4, 8)
        t = ((np.floor(u / p) + np.floor(v / p)) % 2)[..., None]
    elif kind == 'stripes':
        p = rng.uniform(2.5, 5)
        t = (np.sin(u / p) > 0).astype(np.float32)[..., None]
    elif kind == 'dots':
        p = rng.uniform(5, 9)
        du, dv = (u % p) - p / 2, (v % p) - p / 2
        t = 1 - ((du**2 + dv**2) < (p * 0.3)**2).astype(np.float32)[..., None]
    else:  # radial gradient with rings
        y, x = np.mgrid[0:size, 0:size].astype(np.float32)
        d = np.sqrt((x - centre[0])**2 + (y - centre[1])**2) / max(radius, 1)
        t = (0.5 + 0.5 * np.cos(d * np.pi * rng.uniform(2.5, 4)))[..., None]
    img = colour * t + second * (1 - t)
    return img + rng.normal(0, 8, img.shape)


def shape_mask(rng: np.random.Generator, kind: str, size: int, centre: Tuple[float, float],
               radius: float) -> np.ndarray:
    """A uint8 (size, size) mask of one object."""
    mask = np.zeros((size, size), np.uint8)
    cx, cy = centre
    angle = rng.uniform(0, 2 * np.pi)
    if kind == 'disc':
        axes = (int(radius), int(radius * rng.uniform(0.7, 1.0)))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, np.degrees(angle), 0, 360, 1, -1)
        return mask
    if kind == 'square':
        n, radii = 4, [radius] * 4
        ratio = rng.uniform(0.75, 1.0)
        pts = [(radius * np.cos(angle + k * np.pi / 2 + np.pi / 4),
                radius * ratio * np.sin(angle + k * np.pi / 2 + np.pi / 4)) for k in range(4)]
    elif kind == 'triangle':
        pts = [(radius * np.cos(angle + k * 2 * np.pi / 3), radius * np.sin(angle + k * 2 * np.pi / 3))
               for k in range(3)]
    else:  # five-pointed star
        pts = [((radius if k % 2 == 0 else radius * 0.45) * np.cos(angle + k * np.pi / 5),
                (radius if k % 2 == 0 else radius * 0.45) * np.sin(angle + k * np.pi / 5))
               for k in range(10)]
    poly = np.array([(cx + px, cy + py) for px, py in pts], np.float32)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    return mask


def scene(seed: int, split: str, index: int, size: int, max_objects: int):
    """Draw one scene.

    Returns:
        image (uint8 RGB), semantic label map (uint8, ADE convention) and a list of instances
        ``(class_index, visible_mask)`` in drawing order.
    """
    split_id = {'train': 0, 'val': 1}[split]
    rng = np.random.default_rng([seed, split_id, index])
    img = background(rng, size)
    label = np.ones((size, size), np.uint8)  # 1 = background
    owner = np.full((size, size), -1, np.int32)  # which object paints each pixel
    objects = []
    n = int(rng.integers(2, max_objects + 1))
    for k in range(n):
        cls = int(rng.integers(len(OBJECT_CLASSES)))
        name = OBJECT_CLASSES[cls]
        # triangles and stars cover less of their circle: give them larger radii
        radius = size * rng.uniform(0.09, 0.24) * {'triangle': 1.35, 'star': 1.15}.get(name, 1.0)
        centre = (rng.uniform(radius * 0.6, size - radius * 0.6),
                  rng.uniform(radius * 0.6, size - radius * 0.6))
        mask = shape_mask(rng, name, size, centre, radius).astype(bool)
        if mask.sum() < 30:
            continue
        hue, tex = CLASS_STYLE[name]
        colour = _random_colour(rng, hue)
        img[mask] = texture(rng, tex, size, colour, centre, radius)[mask]
        label[mask] = cls + 2
        owner[mask] = len(objects)
        objects.append(cls)
    # unlabelled clutter: small irregular blobs (label 0, ignored by the loss and the metric)
    for _ in range(int(rng.integers(0, 3))):
        blob = _smooth_noise(rng, size, int(rng.integers(6, 12)))
        cx, cy = rng.uniform(0, size, 2)
        y, x = np.mgrid[0:size, 0:size]
        near = (x - cx)**2 + (y - cy)**2 < (size * rng.uniform(0.05, 0.10))**2
        mask = near & (blob > 0.35)
        img[mask] = _random_colour(rng, (0, 180)) * rng.uniform(0.5, 1.0) + rng.normal(0, 20, (mask.sum(), 3))
        label[mask] = 0
        owner[mask] = -1
    img = cv2.GaussianBlur(np.clip(img, 0, 255).astype(np.uint8), (3, 3), 0.6)
    instances = [(cls, owner == i) for i, cls in enumerate(objects)]
    return img, label, instances


# ------------------------------------------------------------------------------------------------
# writers
# ------------------------------------------------------------------------------------------------
def _imwrite(path: str, img_rgb: np.ndarray) -> None:
    if not cv2.imwrite(path, cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise OSError(f'could not write {path}')


def write_ade(root: str, split: str, count: int, seed: int, size: int, max_objects: int) -> None:
    sub = SPLITS['ade'][split]
    img_dir = os.path.join(root, 'images', sub)
    ann_dir = os.path.join(root, 'annotations', sub)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for i in range(count):
        img, label, _ = scene(seed, split, i, size, max_objects)
        name = f'toy_{i:05d}'
        _imwrite(os.path.join(img_dir, name + '.jpg'), img)
        cv2.imwrite(os.path.join(ann_dir, name + '.png'), label)


def _polygons(mask: np.ndarray) -> List[List[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) >= 3 and cv2.contourArea(c) >= 4:
            polys.append([float(v) for v in c.reshape(-1)])
    return polys


def write_coco(root: str, split: str, count: int, seed: int, size: int, max_objects: int,
               mask_format: str, min_area: int = 30) -> Dict[str, int]:
    sub = SPLITS['coco'][split]
    img_dir = os.path.join(root, sub)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    if mask_format == 'rle':
        from pycocotools import mask as mask_utils
    images, annotations = [], []
    offset = {'train': 0, 'val': 1_000_000}[split]
    for i in range(count):
        img, _, instances = scene(seed, split, i, size, max_objects)
        image_id = offset + i + 1
        file_name = f'{image_id:012d}.jpg'
        _imwrite(os.path.join(img_dir, file_name), img)
        images.append(dict(id=image_id, file_name=file_name, width=size, height=size))
        for cls, mask in instances:
            area = int(mask.sum())
            if area < min_area:
                continue  # (almost) fully occluded
            ys, xs = np.nonzero(mask)
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            if mask_format == 'rle':
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                segmentation = dict(size=[size, size], counts=rle['counts'].decode('ascii'))
            else:
                segmentation = _polygons(mask)
                if not segmentation:
                    continue
            annotations.append(dict(id=len(annotations) + 1 + offset, image_id=image_id,
                                    category_id=cls + 1, segmentation=segmentation, area=area,
                                    bbox=[x0, y0, x1 - x0, y1 - y0], iscrowd=0))
    categories = [dict(id=k + 1, name=n, supercategory='shape') for k, n in enumerate(OBJECT_CLASSES)]
    data = dict(info=dict(description=f'mmvit_plugin toy COCO ({split}, seed {seed})', version='1.0'),
                licenses=[], images=images, annotations=annotations, categories=categories)
    with open(os.path.join(root, 'annotations', f'instances_{sub}.json'), 'w') as f:
        json.dump(data, f)
    return dict(images=len(images), instances=len(annotations))


def make_toy_data(kind: str, out: str, train: int = 240, val: int = 40, size: int = 128,
                  max_objects: int = 5, seed: int = 0, mask_format: str = 'polygon') -> None:
    """Write the train and val splits of a toy dataset of ``kind`` (``'ade'`` or ``'coco'``) into
    ``out``, saying what was written."""
    for split, count in (('train', train), ('val', val)):
        if kind == 'ade':
            write_ade(out, split, count, seed, size, max_objects)
            print(f'[toy-data] ADE20K {split}: {count} images -> {out}', flush=True)
        else:
            stats = write_coco(out, split, count, seed, size, max_objects, mask_format)
            print(f'[toy-data] COCO {split}: {stats["images"]} images, {stats["instances"]} '
                  f'instances -> {out}', flush=True)
