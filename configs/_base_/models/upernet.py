# UperNet for ADE20K (the official configs of Swin-Transformer-Semantic-Segmentation, CSWin-Transformer
# segmentation/ and MPViT semantic_segmentation/, all mmseg 0.x): mmseg's UperNet with UperHead of
# 512 channels, an auxiliary FCN head on level 3 (in_index 2) with loss weight 0.4, SyncBN in the
# heads, 150 classes, and 'whole' test mode. The backbone and the heads' in_channels come from the
# leaf config (configs/_base_/backbones/).
_base_ = ['mmseg::_base_/models/upernet_swin.py']

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(_delete_=True),  # mmseg's SwinTransformer: replaced by the leaf's
    decode_head=dict(channels=512, num_classes=150, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_index=2, num_classes=150, norm_cfg=norm_cfg,
                        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                         loss_weight=0.4)),
    test_cfg=dict(mode='whole'))
