# COCO instance segmentation (mmdet's coco_instance.py): single-scale training and test at
# (1333, 800); 2 images per GPU (x 8 GPUs = 16 per iteration); the training set is
# ReportingCocoDataset, mmdet's CocoDataset logging the images that filter_cfg (no annotations,
# too small) leaves out (registered by `mmvit_plugin.datasets`, which coco_1x.py imports).
_base_ = ['mmdet::_base_/datasets/coco_instance.py']

train_dataloader = dict(
    batch_size=2,  # per GPU; x 8 GPUs = 16 images per iteration
    dataset=dict(type='ReportingCocoDataset'))
