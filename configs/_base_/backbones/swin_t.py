# Swin-T, as every config with this backbone uses it: `backbone` (their model.backbone) and
# `backbone_channels` (the channels of its four levels, for the heads; docs/configs.md). Weights:
# the official release (ImageNet-1K, 224, window 7; microsoft/Swin-Transformer README).
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
backbone = dict(
    type='Swin', arch='tiny',
    drop_path_rate=0.2,  # COCO 3x; the 1x (0.1) and UperNet (0.3) leaves set theirs
    init_cfg=dict(type='Pretrained', checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'))
backbone_channels = [96, 192, 384, 768]
