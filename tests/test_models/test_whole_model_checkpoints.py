"""Whole-model checkpoints (UperNet, Mask R-CNN) load through ``load_from`` with zero missing and
zero unexpected keys and give the outputs of the model they came from.

The models are built from this repo's configs with a small backbone and narrow heads. Layouts:
mmseg 1.x / mmdet 3.x model zoo (their own SwinTransformer), mmseg 0.x / mmdet 2.x (the official
Swin-Transformer-Semantic-Segmentation / -Object-Detection releases: official backbone keys, the
same head keys), and the official CSWin (v0.2.0) and MPViT UperNet releases (official backbone
keys, mmseg 0.x heads). mmseg 0.x's UPerHead / FCNHead and mmdet 2.x's FPN / RPNHead /
Shared2FCBBoxHead / FCNMaskHead use the key names of mmseg 1.x / mmdet 3.x (read from their code),
so only the backbone keys need converting."""
import re
import warnings
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint

from checkpoint_layouts import assert_same_features, official_names, randomize

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
SWIN = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
SWIN_CHANNELS = [16, 32, 64, 128]
#: What an mmseg 0.x / mmdet 2.x runner wrote beside the weights.
META_0X = {'mmseg_version': '0.11.0+', 'mmcv_version': '1.3.0', 'iter': 160000,
           'CLASSES': ('wall', 'building'), 'PALETTE': [[120, 120, 120], [180, 120, 120]],
           'config': "model = dict(type='EncoderDecoder')", 'time': 'Mon Apr 12 2021'}
OPTIMIZER_0X = {'state': {0: {'exp_avg': torch.zeros(3)}},
                'param_groups': [{'lr': 0.0, 'betas': (0.9, 0.999), 'weight_decay': 0.01,
                                  'params': [0]}]}


@pytest.fixture(autouse=True)
def quiet_and_seeded():
    torch.manual_seed(0)  # the inputs
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        yield


def build_upernet(config, backbone, in_channels):
    from mmseg.registry import MODELS
    cfg = Config.fromfile(str(CONFIGS / config))
    cfg.model.backbone = backbone
    cfg.model.decode_head.update(in_channels=in_channels, channels=32)
    cfg.model.auxiliary_head.update(in_channels=in_channels[2], channels=16)
    init_default_scope('mmseg')
    return MODELS.build(cfg.model)


def seg_outputs(model, x):
    with torch.no_grad():
        feats = model.extract_feat(x)
        return model.decode_head(feats), model.auxiliary_head(feats)


def load_strict(model, path):
    """What ``load_from`` runs, but with missing or unexpected keys an error."""
    load_checkpoint(model, str(path), map_location='cpu', strict=True)
    return model.eval()


def official_swin_state():
    """A random Swin in the official dense layout (what mmseg 0.x / mmdet 2.x files hold)."""
    from mmvit_plugin.models.backbones import Swin
    return official_names(randomize(Swin(SWIN, drop_path_rate=0.)).state_dict(), 'swin')


def openmmlab_swin_from_official(backbone, official):
    """Load official-layout weights into an mmseg/mmdet SwinTransformer with mmdet's own converter."""
    from mmdet.models.backbones.swin import swin_converter
    converted = {k[len('backbone.'):]: v for k, v in swin_converter(official).items()}
    missing, unexpected = backbone.load_state_dict(converted, strict=False)
    assert not unexpected and all(k.endswith('relative_position_index') for k in missing)


@pytest.mark.parametrize('layout', ['mmseg 1.x', 'mmseg 0.x'])
def test_upernet_swin(tmp_path, layout):
    mmseg_swin = dict(type='SwinTransformer', embed_dims=16, depths=(2, 2, 2, 2),
                      num_heads=(1, 2, 2, 4), window_size=7, drop_path_rate=0.)
    theirs = randomize(build_upernet('upernet_swin_t_ade20k.py', mmseg_swin, SWIN_CHANNELS))
    state = theirs.state_dict()
    if layout == 'mmseg 0.x':
        official = official_swin_state()
        openmmlab_swin_from_official(theirs.backbone, official)
        state = {k: v for k, v in state.items() if not k.startswith('backbone.')}
        state.update({f'backbone.{k}': v for k, v in official.items()})
        checkpoint = {'meta': META_0X, 'state_dict': state, 'optimizer': OPTIMIZER_0X}
    else:
        checkpoint = {'meta': {'mmseg_version': '1.2.2', 'iter': 160000}, 'state_dict': state}
    torch.save(checkpoint, tmp_path / 'upernet.pth')
    ours = build_upernet('upernet_swin_t_ade20k.py',
                         dict(type='Swin', arch=SWIN, drop_path_rate=0.), SWIN_CHANNELS)
    load_strict(ours, tmp_path / 'upernet.pth')
    x = torch.randn(1, 3, 97, 131)
    assert_same_features(seg_outputs(ours, x), seg_outputs(theirs, x), layout)


def build_mask_rcnn(backbone, in_channels):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(str(CONFIGS / 'mask_rcnn_swin_t_coco_1x.py'))
    cfg.model.backbone = backbone
    cfg.model.neck.in_channels = in_channels
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


def det_outputs(model, x):
    """FPN levels, RPN scores and deltas, and the RoI heads on fixed boxes."""
    rois = torch.tensor([[0., 4., 6., 60., 90.], [0., 30., 20., 120., 100.]])
    with torch.no_grad():
        feats = model.extract_feat(x)
        cls, reg = model.rpn_head(feats)
        bbox = model.roi_head._bbox_forward(feats, rois)
        mask = model.roi_head._mask_forward(feats, rois)
    return [*feats, *cls, *reg, bbox['cls_score'], bbox['bbox_pred'], mask['mask_preds']]


@pytest.mark.parametrize('layout', ['mmdet 3.x', 'mmdet 2.x'])
def test_mask_rcnn_swin(tmp_path, layout):
    mmdet_swin = dict(type='SwinTransformer', embed_dims=16, depths=(2, 2, 2, 2),
                      num_heads=(1, 2, 2, 4), window_size=7, drop_path_rate=0.)
    theirs = randomize(build_mask_rcnn(mmdet_swin, SWIN_CHANNELS))
    state = theirs.state_dict()
    if layout == 'mmdet 2.x':
        official = official_swin_state()
        openmmlab_swin_from_official(theirs.backbone, official)
        state = {k: v for k, v in state.items() if not k.startswith('backbone.')}
        state.update({f'backbone.{k}': v for k, v in official.items()})
    torch.save({'meta': {'iter': 0}, 'state_dict': state}, tmp_path / 'mask_rcnn.pth')
    ours = build_mask_rcnn(dict(type='Swin', arch=SWIN, drop_path_rate=0.), SWIN_CHANNELS)
    load_strict(ours, tmp_path / 'mask_rcnn.pth')
    x = torch.randn(1, 3, 128, 160)
    assert_same_features(det_outputs(ours, x), det_outputs(theirs, x), layout)


# --- official CSWin / MPViT UperNet releases ----------------------------------------------------
# Ours → official key names, written out from the official code's module names (SPEC "Official
# keys"), independently of the converters under test.
CSWIN_TO_OFFICIAL = [(re.compile(p), r) for p, r in (
    (r'^patch_embed\.proj\.', 'stage1_conv_embed.0.'),
    (r'^patch_embed\.norm\.', 'stage1_conv_embed.2.'),
    (r'^stages\.(\d)\.blocks\.(\d+)\.attn\.lepe\.(\d)\.', lambda m: f'stage{int(m[1]) + 1}.{m[2]}.attns.{m[3]}.get_v.'),
    (r'^stages\.(\d)\.blocks\.(\d+)\.attn\.(qkv|proj)\.', lambda m: f'stage{int(m[1]) + 1}.{m[2]}.{m[3]}.'),
    (r'^stages\.(\d)\.blocks\.(\d+)\.', lambda m: f'stage{int(m[1]) + 1}.{m[2]}.'),
    (r'^stages\.(\d)\.downsample\.proj\.', lambda m: f'merge{int(m[1]) + 1}.conv.'),
    (r'^stages\.(\d)\.downsample\.norm\.', lambda m: f'merge{int(m[1]) + 1}.norm.'),
    (r'^stages\.(\d)\.out_norm\.', lambda m: f'norm{int(m[1]) + 1}.'),
)]


def cswin_official(state):
    out = {}
    for key, value in state.items():
        for pattern, repl in CSWIN_TO_OFFICIAL:
            key, n = pattern.subn(repl, key, count=1)
            if n:
                break
        out[key] = value
    assert not any(k.startswith(('stages.', 'patch_embed.')) for k in out), sorted(out)[:5]
    return out


def mpvit_official(state):
    """The official module repeats each encoder's shared CPE / CRPE under every layer."""
    out = dict(state)
    for key, value in state.items():
        m = re.match(r'^(.*mhca_blks\.\d+\.)(cpe|crpe)\.(.*)$', key)
        if not m:
            continue
        layers = {int(n) for n in re.findall(re.escape(m[1]) + r'MHCA_layers\.(\d+)\.', ' '.join(state))}
        for layer in layers:
            out[f'{m[1]}MHCA_layers.{layer}.{m[2]}.{m[3]}'] = value
            if m[2] == 'crpe':
                out[f'{m[1]}MHCA_layers.{layer}.factoratt_crpe.crpe.{m[3]}'] = value
    return out


@pytest.mark.parametrize('family', ['CSWin', 'MPViT'])
def test_official_upernet_release(tmp_path, family):
    """The model it came from is ours (the official modules are not installable here; their
    agreement with ours is in the backbone tests and the README), saved as the official release
    files are: official backbone keys, mmseg 0.x heads, 0.x meta and optimizer state."""
    if family == 'CSWin':
        config, to_official = 'upernet_cswin_t_ade20k.py', cswin_official
        backbone = dict(type='CSWin', arch=dict(embed_dims=16, depths=(1, 1, 2, 1),
                                                num_heads=(2, 2, 4, 4)), drop_path_rate=0.)
        channels = [16, 32, 64, 128]
    else:
        config, to_official = 'upernet_mpvit_s_ade20k.py', mpvit_official
        backbone = dict(type='MPViT', arch=dict(num_layers=(1, 2, 1, 1), embed_dims=(16, 24, 32, 40),
                                                num_heads=(8, 8, 8, 8), mlp_ratios=(2, 2, 2, 2),
                                                num_paths=(2, 3, 3, 3)),
                        norm_cfg=dict(type='SyncBN', requires_grad=True), drop_path_rate=0.)
        channels = [24, 32, 40, 40]
    source = randomize(build_upernet(config, backbone, channels))
    state = source.state_dict()
    backbone_state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    official = to_official(backbone_state)
    state = {k: v for k, v in state.items() if not k.startswith('backbone.')}
    state.update({f'backbone.{k}': v for k, v in official.items()})
    torch.save({'meta': META_0X, 'state_dict': state, 'optimizer': OPTIMIZER_0X},
               tmp_path / 'release.pth')
    ours = load_strict(build_upernet(config, backbone, channels), tmp_path / 'release.pth')
    x = torch.randn(1, 3, 97, 131)
    assert_same_features(seg_outputs(ours, x), seg_outputs(source, x), family)
