# RetinaNet + FPN: mmdet's, on P3-P7 with the extra levels from C5 (as MPViT's
# build_retinanet_mpvit_fpn_backbone): the backbone returns levels 1..3 (C3-C5). The backbone and
# the FPN in_channels (of those three levels) come from the leaf config (configs/_base_/backbones/).
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py']

model = dict(
    backbone=dict(_delete_=True, out_indices=(1, 2, 3)),  # mmdet's ResNet-50: the leaf's
    neck=dict(start_level=0, add_extra_convs='on_input', num_outs=5))
