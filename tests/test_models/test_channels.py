"""check_feature_channels: a neck or head configured for other channels than the backbone returns
is an error naming the config entry and the right value."""
import copy
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvit_plugin.models import ChannelMismatchError, check_feature_channels

REPO = Path(__file__).resolve().parents[2]

SEG_TOY = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'
DET_TOY = REPO / 'configs' / 'toy' / 'mask_rcnn_cswin_toy.py'


def build(path, **changes):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    model_cfg = copy.deepcopy(cfg.model)
    for dotted, value in changes.items():
        *parents, key = dotted.split('__')
        target = model_cfg
        for parent in parents:
            target = target[parent]
        target[key] = value
    if cfg.default_scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    return MODELS.build(model_cfg)


def test_matching_toy_models_pass():
    for path in (SEG_TOY, DET_TOY):
        check_feature_channels(build(path))  # the toy CSWin returns 32, 64, 128, 256


def test_decode_head_in_channels_mismatch_names_the_entry_and_the_fix():
    model = build(SEG_TOY, decode_head__in_channels=[96, 192, 384, 768])
    with pytest.raises(ChannelMismatchError) as err:
        check_feature_channels(model)
    message = str(err.value)
    assert 'model.decode_head.in_channels=[96, 192, 384, 768]' in message
    assert 'CSWin returns 4 feature maps with channels [32, 64, 128, 256]' in message
    assert 'set in_channels=[32, 64, 128, 256]' in message


def test_auxiliary_head_reading_the_wrong_level():
    model = build(SEG_TOY, auxiliary_head__in_index=3)  # 128 channels configured, level 3 has 256
    with pytest.raises(ChannelMismatchError, match=r'model.auxiliary_head.in_channels=128 with '
                       r'in_index=3.*set in_channels=256'):
        check_feature_channels(model)


def test_head_index_beyond_the_returned_levels():
    model = build(SEG_TOY, backbone__out_indices=(0, 1, 2))  # the heads still expect 4 levels
    with pytest.raises(ChannelMismatchError, match=r'in_index=\[0, 1, 2, 3\] selects feature map 3, '
                       r'but the backbone CSWin returns 3 feature maps'):
        check_feature_channels(model)


def test_resize_concat_head_compares_the_sum():
    def fcn_head(in_channels):
        return dict(type='FCNHead', in_index=[2, 3], input_transform='resize_concat',
                    in_channels=in_channels, channels=16, num_convs=1, num_classes=5)

    check_feature_channels(build(SEG_TOY, decode_head=fcn_head([128, 256])))
    with pytest.raises(ChannelMismatchError, match='in_channels=320 .*set in_channels=384'):
        check_feature_channels(build(SEG_TOY, decode_head=fcn_head([64, 256])))


def test_fpn_neck_mismatch():
    model = build(DET_TOY, neck__in_channels=[96, 192, 384, 768])
    with pytest.raises(ChannelMismatchError, match=r'model.neck.in_channels=\[96, 192, 384, 768\].*'
                       r'set neck.in_channels=\[32, 64, 128, 256\]'):
        check_feature_channels(model)


def test_models_with_other_backbones_are_left_alone():
    model = build(SEG_TOY, backbone=dict(type='ResNetV1c', depth=18, num_stages=4,
                                         out_indices=(0, 1, 2, 3)))
    check_feature_channels(model)  # not ours: mmseg reports any mismatch itself
