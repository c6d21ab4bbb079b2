# CSWin-S, as every config with this backbone uses it: `backbone` (their model.backbone) and
# `backbone_channels` (the channels of its four levels, for the heads; docs/configs.md). Weights:
# the official release (ImageNet-1K, 224, split 1, 2, 7, 7; microsoft/CSWin-Transformer README).
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
backbone = dict(
    type='CSWin', arch='small',
    drop_path_rate=0.4,  # UperNet; COCO: not published, the same
    init_cfg=dict(type='Pretrained', checkpoint='https://github.com/microsoft/CSWin-Transformer/releases/download/v0.1.0/cswin_small_224.pth'))
backbone_channels = [64, 128, 256, 512]
