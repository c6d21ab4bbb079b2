"""Random mmseg / mmdet batches, for what runs a model without a dataset: a training step of the
GPU check and of the tests, a FLOP count. What :meth:`BaseModel.train_step` and a data
preprocessor take: ``dict(inputs=[uint8 CHW images], data_samples=[...])``.

mmseg and mmdet are imported inside the functions (this module is not imported by
``mmvit_plugin``).
"""
from typing import Any, Dict, Optional, Tuple

import torch

Size = Tuple[int, int]  # (height, width)


def random_boxes(count: int, height: int, width: int,
                 generator: Optional[torch.Generator] = None,
                 min_side: float = 4.) -> torch.Tensor:
    """``(count, 4)`` boxes ``x1, y1, x2, y2`` inside a ``height x width`` image."""
    x1 = torch.rand(count, generator=generator) * (width - min_side)
    y1 = torch.rand(count, generator=generator) * (height - min_side)
    w = min_side + torch.rand(count, generator=generator) * (width / 3)
    h = min_side + torch.rand(count, generator=generator) * (height / 3)
    return torch.stack([x1, y1, (x1 + w).clamp(max=width), (y1 + h).clamp(max=height)], 1)


def _images(batch: int, size: Size, generator: Optional[torch.Generator]) -> list:
    return [torch.randint(0, 256, (3, *size), generator=generator, dtype=torch.uint8)
            for _ in range(batch)]


def random_seg_batch(size: Size, batch: int = 2, num_classes: Optional[int] = None,
                     generator: Optional[torch.Generator] = None) -> Dict[str, Any]:
    """``batch`` random images of ``size`` with mmseg ``SegDataSample`` s; with ``num_classes``,
    random label maps (``gt_sem_seg``) too."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(batch):
        sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size))
        if num_classes is not None:
            labels = torch.randint(0, num_classes, (1, *size), generator=generator)
            sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    return dict(inputs=_images(batch, size, generator), data_samples=samples)


def random_det_batch(size: Size, batch: int = 2, num_classes: Optional[int] = None,
                     num_boxes: int = 8,
                     generator: Optional[torch.Generator] = None) -> Dict[str, Any]:
    """``batch`` random images of ``size`` with mmdet ``DetDataSample`` s; with ``num_classes``,
    ``num_boxes`` random instances each (boxes, labels, and masks filling their boxes)."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    height, width = size
    samples = []
    for _ in range(batch):
        sample = DetDataSample(metainfo=dict(img_shape=size, ori_shape=size,
                                             scale_factor=(1., 1.)))
        if num_classes is not None:
            boxes = random_boxes(num_boxes, height, width, generator,
                                 min_side=min(height, width) / 16)
            masks = torch.zeros(len(boxes), height, width, dtype=torch.uint8)
            for j, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
                masks[j, y1:y2, x1:x2] = 1
            sample.gt_instances = InstanceData(
                bboxes=boxes, labels=torch.randint(0, num_classes, (len(boxes), ),
                                                   generator=generator),
                masks=BitmapMasks(masks.numpy(), height, width))
        samples.append(sample)
    return dict(inputs=_images(batch, size, generator), data_samples=samples)
