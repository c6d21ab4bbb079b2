"""mmdet's COCO dataset, saying which images its ``filter_cfg`` leaves out of training."""
import logging
from typing import List

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log


@DATASETS.register_module()
class ReportingCocoDataset(CocoDataset):
    """:class:`mmdet.datasets.CocoDataset` that logs the images ``filter_cfg`` leaves out.

    The published recipes train on images with annotations only (``filter_empty_gt=True``) and
    skip images with a side under ``min_size``; mmdet does both without a word, so a dataset whose
    annotations went missing trains on a fraction of its images unnoticed. This class filters
    exactly as mmdet does and logs a warning with the count for each reason and a few file names.
    In ``test_mode`` (validation, test) nothing is filtered: images without annotations are
    evaluated, and detections on them count as false positives.
    """

    def filter_data(self) -> List[dict]:
        kept = super().filter_data()
        if len(kept) == len(self.data_list):
            return kept
        kept_ids = {info['img_id'] for info in kept}
        min_size = self.filter_cfg.get('min_size', 0)
        small, empty = [], []
        for info in self.data_list:
            if info['img_id'] not in kept_ids:
                is_small = min(info['width'], info['height']) < min_size
                (small if is_small else empty).append(info['img_path'])
        reasons = [f'{len(paths)} {why} (e.g. {", ".join(paths[:3])})'
                   for paths, why in ((empty, 'without annotations of the selected classes'),
                                      (small, f'with a side under min_size={min_size} px'))
                   if paths]
        print_log(f'{type(self).__name__} {self.ann_file}: {len(self.data_list) - len(kept)} of '
                  f'{len(self.data_list)} images left out of training by filter_cfg='
                  f'{self.filter_cfg}: {"; ".join(reasons)}', logger='current',
                  level=logging.WARNING)
        return kept
