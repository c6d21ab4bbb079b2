# MPViT-XS, as every config with this backbone uses it: `backbone` (their model.backbone) and
# `backbone_channels` (the channels of its four levels, for the heads; docs/configs.md). Weights:
# the official release (ImageNet-1K, 224; youngwanLEE/MPViT README).
# The classification release; the official MPViT dense recipes start from converted copies of
# the same ImageNet-1K weights (mpvit_*_d2.pth for Detectron2, mpvit_*_mm.pth for mmseg 0.x).
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
backbone = dict(
    # SyncBN: the BN statistics over all GPUs
    type='MPViT', arch='xsmall', norm_cfg=dict(type='SyncBN', requires_grad=True),
    drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained', checkpoint='https://dl.dropbox.com/s/vvpq2m474g8tvyq/mpvit_xsmall.pth'))
backbone_channels = [128, 192, 256, 256]
