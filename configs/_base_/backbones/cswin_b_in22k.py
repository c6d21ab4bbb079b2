# CSWin-B (ImageNet-22K), as every config with this backbone uses it: `backbone` (their
# model.backbone) and `backbone_channels` (the channels of its four levels, for the heads;
# docs/configs.md).
# No ImageNet-22K CSWin-B file was released (the README lists ImageNet-22K weights for
# CSWin-L only; microsoft/CSWin-Transformer issue #26 asks for them, open), so this base
# takes a local path: put an ImageNet-22K CSWin-B file (split 12, as the released 384
# weights) there or pass --cfg-options model.backbone.init_cfg.checkpoint=PATH.
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
backbone = dict(
    type='CSWin', arch='base', split_size=(1, 2, 12, 12),  # the stripes of the 384 weights
    drop_path_rate=0.6,  # not published; our choice
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/cswin_base_22k_384.pth'))
backbone_channels = [96, 192, 384, 768]
