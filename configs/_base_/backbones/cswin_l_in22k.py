# CSWin-L (ImageNet-22K), as every config with this backbone uses it: `backbone` (their
# model.backbone) and `backbone_channels` (the channels of its four levels, for the heads;
# docs/configs.md). Weights: the official release (ImageNet-22K pre-training, then ImageNet-1K at
# 384, split 1, 2, 12, 12; microsoft/CSWin-Transformer README).
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
backbone = dict(
    type='CSWin', arch='large', split_size=(1, 2, 12, 12),  # the stripes of the 384 weights
    drop_path_rate=0.6,  # not published; our choice
    init_cfg=dict(type='Pretrained', checkpoint='https://github.com/microsoft/CSWin-Transformer/releases/download/v0.1.0/cswin_large_384.pth'))
backbone_channels = [144, 288, 576, 1152]
