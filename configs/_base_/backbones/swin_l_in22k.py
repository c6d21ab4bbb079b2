# Swin-L (ImageNet-22K), as every config with this backbone uses it: `backbone` (their
# model.backbone) and `backbone_channels` (the channels of its four levels, for the heads;
# docs/configs.md). Weights: the official release (ImageNet-22K, 384, window 12; microsoft/Swin-
# Transformer README).
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
backbone = dict(
    type='Swin', arch='large', window_size=12,  # the window of the 384 weights
    drop_path_rate=0.3,  # not published; our choice
    init_cfg=dict(type='Pretrained', checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth'))
backbone_channels = [192, 384, 768, 1536]
