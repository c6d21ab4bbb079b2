# Cascade Mask R-CNN + FPN as the official Swin configs
# (cascade_mask_rcnn_swin_*_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_3x_coco.py; CSWin
# reports the same setting): mmdet's Cascade Mask R-CNN whose three box heads are "4conv1fc"
# heads (4 shared 3x3 convs with SyncBN, then 1 fc of 1024) regressing decoded boxes with a GIoU
# loss (weight 10). The backbone and the FPN in_channels come from the leaf config
# (configs/_base_/backbones/, as for Mask R-CNN).
_base_ = ['mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py']

cascade_stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]
model = dict(
    backbone=dict(_delete_=True),  # mmdet's ResNet-50: replaced by the leaf's
    roi_head=dict(bbox_head=[
        dict(type='ConvFCBBoxHead',
             num_shared_convs=4,
             num_shared_fcs=1,
             in_channels=256,
             conv_out_channels=256,
             fc_out_channels=1024,
             roi_feat_size=7,
             num_classes=80,
             bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                             target_stds=stds),
             reg_class_agnostic=False,
             reg_decoded_bbox=True,
             norm_cfg=dict(type='SyncBN', requires_grad=True),
             loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
             loss_bbox=dict(type='GIoULoss', loss_weight=10.0)) for stds in cascade_stds
    ]))
