# CvT-13, as every config with this backbone uses it: `backbone` (their model.backbone) and
# `backbone_channels` (the channels of its four levels, for the heads; docs/configs.md).
# CvT's weights have no direct link: download the ImageNet-1K file (CvT-13-224x224-IN-1k.pth) from
# the official model zoo folder, https://1drv.ms/u/s!AhIXJn_J-blW9RzF3rMW7SsLHa8h?e=blQ0Al
# (microsoft/CvT README), and put it at the path below or pass
# --cfg-options model.backbone.init_cfg.checkpoint=PATH.
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
backbone = dict(
    type='CvT', arch='13',
    # None: the official per-stage rates (0, 0, 0.1; the extra stride-32 stage 0.1); no
    # dense recipe is published for CvT.
    drop_path_rate=None,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/CvT-13-224x224-IN-1k.pth'))
backbone_channels = [64, 192, 384, 384]
