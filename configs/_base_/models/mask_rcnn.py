# Mask R-CNN + FPN: mmdet's, the backbone and the FPN in_channels from the leaf config
# (configs/_base_/backbones/).
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']

model = dict(backbone=dict(_delete_=True))  # mmdet's ResNet-50: replaced by the leaf's
