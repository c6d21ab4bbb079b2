"""Every config in configs/ parses, carries the published recipe (the official configs and READMEs;
docs/configs.md), names the official weights, and builds its model (without initialising it: no
download), with head/neck in_channels matching what the backbone outputs; the layout keeps each
backbone's settings in one file (configs/_base_/backbones/). That reorganising the files changes
no config is tests/test_configs_resolved.py's."""
import ast
import contextlib
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from unittest import mock

import pytest
import torch

from mmvit_plugin.models import check_feature_channels

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs'
# configs/scaleout/: recipes of configs/ under another runner (FSDP, DeepSpeed), the same models
# and figures; tests/test_configs_scaleout.py checks them.
CONFIGS = sorted(p for p in CONFIG_DIR.rglob('*.py')
                 if '_base_' not in p.parts and 'scaleout' not in p.parts)
BACKBONE_BASES = sorted((CONFIG_DIR / '_base_' / 'backbones').glob('*.py'))
FULL = [p for p in CONFIGS if p.parent == CONFIG_DIR]
TOY = [p for p in CONFIGS if p.parent.name == 'toy']

BACKBONE_TYPES = ('CSWin', 'CvT', 'MPViT', 'Swin')

# The configs of the model zoo (backbone variant -> tasks).
SEG_VARIANTS = ['cswin_t', 'cswin_s', 'cswin_b', 'swin_t', 'swin_s', 'swin_b', 'mpvit_s', 'mpvit_b',
                'cvt_13', 'cvt_21']
SEG640_VARIANTS = ['swin_b', 'swin_l', 'cswin_b', 'cswin_l']
DET_VARIANTS = ['cswin_t', 'cswin_s', 'cswin_b', 'swin_t', 'swin_s', 'mpvit_t', 'mpvit_xs',
                'mpvit_s', 'mpvit_b', 'cvt_13', 'cvt_21']
CASCADE_VARIANTS = ['swin_t', 'swin_s', 'swin_b', 'cswin_t', 'cswin_s', 'cswin_b']
CASCADE_1X_VARIANTS = ['swin_t']
RETINA_VARIANTS = ['mpvit_t', 'mpvit_xs', 'mpvit_s', 'mpvit_b']
EXPECTED = ([f'upernet_{v}_ade20k.py' for v in SEG_VARIANTS] +
            [f'upernet_{v}_in22k_ade20k_640.py' for v in SEG640_VARIANTS] +
            [f'mask_rcnn_{v}_coco_{s}.py' for v in DET_VARIANTS for s in ('1x', '3x')] +
            [f'cascade_mask_rcnn_{v}_coco_3x.py' for v in CASCADE_VARIANTS] +
            [f'cascade_mask_rcnn_{v}_coco_1x.py' for v in CASCADE_1X_VARIANTS] +
            [f'retinanet_{v}_coco_{s}.py' for v in RETINA_VARIANTS for s in ('1x', '3x')])
# Mask2Former and DINO with mmseg's / mmdet's recipes, for the UperNet variants (and the 640 ones
# with ImageNet-22K weights, Swin-L and CSWin-L): their recipe, build and training checks are
# tests/test_configs_query_heads.py's (one full-size build each, with the parameter count).
QUERY_HEAD_VARIANTS = SEG_VARIANTS
QUERY_HEAD_NAMES = sorted(
    [f'mask2former_{v}_ade20k.py' for v in QUERY_HEAD_VARIANTS] +
    [f'mask2former_{v}_in22k_ade20k_640.py' for v in ('swin_l', 'cswin_l')] +
    [f'mask2former_{v}_coco_{t}.py' for v in QUERY_HEAD_VARIANTS for t in ('instance', 'panoptic')] +
    [f'dino_{v}_coco_12e.py' for v in QUERY_HEAD_VARIANTS])
EXPECTED += QUERY_HEAD_NAMES
CLASSIC = [p for p in FULL if p.name not in QUERY_HEAD_NAMES]
BUILT_HERE = [p for p in CONFIGS if p not in FULL or p.name not in QUERY_HEAD_NAMES]

# Drop path of the official configs (None: the backbone's own per-stage default, CvT; variants
# missing here are the configs' own choice).
SEG_DROP_PATH = dict(swin_t=0.3, swin_s=0.3, swin_b=0.3, cswin_t=0.3, cswin_s=0.4, cswin_b=0.6,
                     mpvit_s=0.2, mpvit_b=0.4, cvt_13=None, cvt_21=None)
DET_DROP_PATH = {('swin_t', '1x'): 0.1, ('swin_t', '3x'): 0.2, ('swin_s', '3x'): 0.2,
                 'mpvit_t': 0.1, 'mpvit_xs': 0.1, 'mpvit_s': 0.2, 'mpvit_b': 0.4, 'cvt_13': None,
                 'cvt_21': None}
CASCADE_DROP_PATH = {('swin_t', '1x'): 0.0, 'swin_t': 0.2, 'swin_s': 0.2, 'swin_b': 0.3}
NO_DECAY_KEYS = ('norm', 'relative_position_bias_table', 'absolute_pos_embed', 'cls_token')
TTA_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)

# Where the official releases live (their READMEs), and the file of each MPViT arch.
SWIN_RELEASE = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
CSWIN_RELEASE = 'https://github.com/microsoft/CSWin-Transformer/releases/download/v0.1.0/'
MPVIT_FILES = dict(tiny='1cmquqyjmaeeg1n/mpvit_tiny.pth', xsmall='vvpq2m474g8tvyq/mpvit_xsmall.pth',
                   small='y3dnmmy8h4npz7a/mpvit_small.pth', base='la8w31m0apj2830/mpvit_base.pth')


def _name(path: Path) -> str:
    return str(path.relative_to(CONFIG_DIR))


@lru_cache(maxsize=None)
def load(path: Path):
    from mmengine.config import Config
    return Config.fromfile(str(path))


def _bases(path: Path) -> list:
    """The `_base_` list of the config at ``path``, as written."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == '_base_':
            bases = ast.literal_eval(node.value)
            return bases if isinstance(bases, list) else [bases]
    return []


def backbone_base(path: Path) -> Path:
    """The configs/_base_/backbones/ file the config at ``path`` takes its backbone from."""
    found = [b for b in _bases(path) if b.startswith('./_base_/backbones/')]
    assert len(found) == 1, f'{path.name}: not exactly one backbone base in {_bases(path)}'
    return (path.parent / found[0]).resolve()


def test_expected_configs_exist():
    names = {p.name for p in FULL}
    missing = [n for n in EXPECTED if n not in names]
    assert not missing, f'missing configs: {missing}'
    assert not names - set(EXPECTED), 'a config the tests do not check'
    assert {p.name for p in TOY} >= {'upernet_cswin_toy.py', 'mask_rcnn_cswin_toy.py'}


@lru_cache(maxsize=None)
def _registered_by_package():
    """Names `import mmvit_plugin` alone registers, seen from a fresh interpreter."""
    code = ('import mmvit_plugin; from mmengine.registry import MODELS; '
            'print(" ".join(sorted(MODELS.module_dict)))')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    return set(res.stdout.split())


@pytest.mark.parametrize('backbone_type', BACKBONE_TYPES)
def test_package_registers_backbone(backbone_type):
    """`custom_imports=['mmvit_plugin']` alone must register every backbone the configs use."""
    assert backbone_type in _registered_by_package(), (
        f'`import mmvit_plugin` does not register {backbone_type}; configs with '
        "custom_imports=dict(imports=['mmvit_plugin']) cannot build it")


def expected_weights(name: str, backbone) -> str:
    """The official file this config's recipe starts from, derived from its backbone settings."""
    arch, typ, in22k = backbone.arch, backbone.type, '_in22k_' in name
    if typ == 'Swin':
        window = backbone.get('window_size', 7)
        size = {7: 224, 12: 384}[window]
        return f'{SWIN_RELEASE}swin_{arch}_patch4_window{window}_{size}{"_22k" if in22k else ""}.pth'
    if typ == 'CSWin':
        split = tuple(backbone.get('split_size', (1, 2, 7, 7)))
        if arch == 'base' and in22k:  # no ImageNet-22K CSWin-B was released: a local path
            assert split == (1, 2, 12, 12)
            return 'pretrained/cswin_base_22k_384.pth'
        size = {(1, 2, 7, 7): 224, (1, 2, 12, 12): 384}[split]
        return f'{CSWIN_RELEASE}cswin_{arch}_{size}.pth'
    if typ == 'MPViT':
        return f'https://dl.dropbox.com/s/{MPVIT_FILES[arch]}'
    assert typ == 'CvT'
    return f'pretrained/CvT-{arch}-224x224-IN-1k.pth'


@pytest.mark.parametrize('path', FULL, ids=_name)
def test_names_the_official_weights(path):
    cfg = load(path)
    backbone = cfg.model.backbone
    assert cfg.load_from is None and 'pretrained' not in cfg
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=expected_weights(path.stem, backbone))
    text = backbone_base(path).read_text()  # where the weights are named
    if backbone.type == 'CvT':  # no direct link: the config says where the file is
        assert 'https://1drv.ms/' in text and 'microsoft/CvT' in text
    assert 'init_cfg.checkpoint=None' in text  # how to train from scratch


@pytest.mark.parametrize('path', FULL, ids=_name)
def test_leaf_layout(path):
    """A leaf config is its recipe base plus the backbone base of its variant (named in the file
    name), wired to the heads; it spells out no backbone setting but a recipe's drop path."""
    bases = _bases(path)
    assert len(bases) == 2 and bases[0].startswith('./_base_/'), bases
    variant = backbone_base(path).stem
    assert re.search(rf'_{variant}_(ade20k|coco)', path.stem), (path.name, variant)
    code = '\n'.join(line.split('#')[0] for line in path.read_text().splitlines())
    for word in ('_delete_', 'out_indices', 'init_cfg', 'type=', 'arch=', 'in_channels=['):
        assert word not in code, f'{path.name} spells out {word!r}: its backbone base holds it'


def test_backbone_settings_live_in_one_file():
    """Changing a backbone's default (its weights, arch, drop path, channels) edits one file: every
    backbone base is used, and its weights are named nowhere else under configs/."""
    used = {backbone_base(p) for p in FULL}
    assert used == set(BACKBONE_BASES), 'a backbone base no config uses'
    others = [p for p in CONFIG_DIR.rglob('*.py') if p not in BACKBONE_BASES]
    for base in BACKBONE_BASES:
        namespace = {}
        exec(base.read_text(), {}, namespace)  # plain assignments, no _base_ of its own
        assert set(namespace) == {'backbone', 'backbone_channels'}, base.name
        checkpoint = namespace['backbone']['init_cfg']['checkpoint']
        assert not [p.name for p in others if checkpoint in p.read_text()], base.name


@pytest.mark.parametrize('path', CLASSIC, ids=_name)
def test_recipe(path):
    cfg = load(path)
    name = path.stem
    imports = ['mmvit_plugin'] + (['mmvit_plugin.datasets'] if cfg.default_scope == 'mmdet' else [])
    assert cfg.custom_imports == dict(imports=imports, allow_failed_imports=False)
    assert cfg.custom_hooks == [dict(type='RandomStateHook'), dict(type='PlainParamGroupsHook')]
    assert cfg.num_gpus == 8 and cfg.train_dataloader.batch_size == 2  # 16 images per iteration
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)
    optim = cfg.optim_wrapper
    assert optim.type == 'OptimWrapper' and optim.optimizer.type == 'AdamW'
    assert tuple(optim.optimizer.betas) == (0.9, 0.999)
    keys = optim.paramwise_cfg.custom_keys
    for key in NO_DECAY_KEYS:
        assert keys[key].decay_mult == 0.0, key
    assert optim.paramwise_cfg.norm_decay_mult == 0.0
    if name.startswith('upernet_'):
        drop_path = check_upernet(cfg, name)
    elif name.startswith('retinanet_'):
        drop_path = check_retinanet(cfg, name)
    else:
        drop_path = check_rcnn(cfg, name)
    if drop_path != 'unchecked':  # not in the official configs: the config's choice
        assert cfg.model.backbone.drop_path_rate == drop_path


def check_upernet(cfg, name):
    in22k = name.endswith('_640')
    variant = re.match(r'upernet_(\w+?)(_in22k)?_ade20k', name).group(1)
    crop, test_scale = ((640, 640), (2560, 640)) if in22k else ((512, 512), (2048, 512))
    assert cfg.default_scope == 'mmseg'
    optim = cfg.optim_wrapper
    assert (optim.optimizer.lr, optim.optimizer.weight_decay) == (6e-5, 0.01)
    warm, poly = cfg.param_scheduler
    assert warm.type == 'LinearLR' and (warm.begin, warm.end) == (0, 1500) and not warm.by_epoch
    assert poly.type == 'PolyLR' and poly.power == 1.0 and (poly.begin, poly.end) == (1500, 160000)
    assert poly.eta_min == 0.0
    assert cfg.train_cfg.max_iters == 160000
    assert tuple(cfg.crop_size) == crop and tuple(cfg.model.data_preprocessor.size) == crop
    train = cfg.train_dataloader.dataset
    assert train.type == 'ADE20KDataset'
    assert [tuple(t.crop_size) for t in train.pipeline if t.type == 'RandomCrop'] == [crop]
    assert [tuple(t.scale) for t in train.pipeline if t.type == 'RandomResize'] == [test_scale]
    head, aux = cfg.model.decode_head, cfg.model.auxiliary_head
    assert head.type == 'UPerHead' and head.channels == 512 and head.num_classes == 150
    assert aux.type == 'FCNHead' and aux.in_index == 2 and aux.loss_decode.loss_weight == 0.4
    assert head.norm_cfg.type == aux.norm_cfg.type == 'SyncBN'
    assert cfg.model.test_cfg.mode == 'whole'  # every official UperNet recipe
    for pipeline in (cfg.test_pipeline, cfg.test_dataloader.dataset.pipeline):
        resize = [t for t in pipeline if t.type == 'Resize']
        assert len(resize) == 1 and tuple(resize[0].scale) == test_scale and resize[0].keep_ratio
    # the published multi-scale + flip protocol: test_scale x 0.5..1.75 (mmseg 0.x), both flips
    assert cfg.tta_model.type == 'SegTTAModel'
    aug = cfg.tta_pipeline[1]
    assert aug.type == 'TestTimeAug'
    scales, flips = aug.transforms[0], aug.transforms[1]
    assert [tuple(t.scale) for t in scales] == [(int(test_scale[0] * r), int(test_scale[1] * r))
                                                for r in TTA_RATIOS]
    assert all(t.keep_ratio for t in scales)
    assert sorted(t.prob for t in flips) == [0.0, 1.0]
    return SEG_DROP_PATH.get(variant, 'unchecked') if not in22k else 'unchecked'


def check_rcnn(cfg, name):
    cascade = name.startswith('cascade_')
    variant, sched = re.match(r'(?:cascade_)?mask_rcnn_(\w+)_coco_(1x|3x)', name).groups()
    assert cfg.default_scope == 'mmdet'
    assert (cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay) == (1e-4, 0.05)
    mpvit = cfg.model.backbone.type == 'MPViT'  # MPViT's Detectron2 recipe, the others Swin's
    milestones = [8, 11] if sched == '1x' else [28, 33] if mpvit else [27, 33]
    check_schedule(cfg, sched, milestones, warmup=0.01 if mpvit else 0.001)
    check_augmentation(cfg, sched, with_mask=True)
    assert cfg.train_dataloader.dataset.type == 'ReportingCocoDataset'
    assert cfg.train_dataloader.dataset.filter_cfg.filter_empty_gt is not mpvit
    assert cfg.optim_wrapper.get('clip_grad') == (dict(max_norm=1.0, norm_type=2) if mpvit else None)
    assert 'tta_model' not in cfg  # mmdet 3.3 has no TTA for instance segmentation
    if not cascade:
        assert cfg.model.type == 'MaskRCNN'
        return DET_DROP_PATH.get((variant, sched), DET_DROP_PATH.get(variant, 'unchecked'))
    # the official Swin Cascade Mask R-CNN: three 4conv1fc box heads, SyncBN, GIoU on decoded boxes
    assert cfg.model.type == 'CascadeRCNN'
    heads = cfg.model.roi_head.bbox_head
    assert len(heads) == 3
    for head, stds in zip(heads, ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                                  [0.033, 0.033, 0.067, 0.067])):
        assert head.type == 'ConvFCBBoxHead' and (head.num_shared_convs, head.num_shared_fcs) == (4, 1)
        assert head.fc_out_channels == 1024 and head.norm_cfg.type == 'SyncBN'
        assert head.reg_decoded_bbox and head.loss_bbox == dict(type='GIoULoss', loss_weight=10.0)
        assert head.bbox_coder.target_stds == stds
    return CASCADE_DROP_PATH.get((variant, sched), CASCADE_DROP_PATH.get(variant, 'unchecked'))


def check_retinanet(cfg, name):
    variant, sched = re.match(r'retinanet_(\w+)_coco_(1x|3x)', name).groups()
    assert cfg.default_scope == 'mmdet' and cfg.model.type == 'RetinaNet'
    # MPViT's Detectron2 recipe: gradient clipping, warm-up from 0.01, empty images kept
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=1.0, norm_type=2)
    check_schedule(cfg, sched, [8, 11] if sched == '1x' else [28, 33], warmup=0.01)
    check_augmentation(cfg, sched, with_mask=False)
    assert cfg.train_dataloader.dataset.filter_cfg.filter_empty_gt is False
    assert cfg.test_evaluator.metric == cfg.val_evaluator.metric == 'bbox'
    assert cfg.model.backbone.out_indices == (1, 2, 3)  # C3-C5, P6/P7 from C5
    neck = cfg.model.neck
    assert (neck.start_level, neck.add_extra_convs, neck.num_outs) == (0, 'on_input', 5)
    assert cfg.tta_model.type == 'DetTTAModel'
    return DET_DROP_PATH[variant]


def check_schedule(cfg, sched, milestones, warmup):
    epochs = 12 if sched == '1x' else 36
    assert cfg.train_cfg.max_epochs == epochs
    warm, step = cfg.param_scheduler
    assert warm.type == 'LinearLR' and warm.start_factor == warmup and warm.end == 1000
    assert step.type == 'MultiStepLR' and step.milestones == milestones and step.by_epoch
    assert step.end == epochs


def check_augmentation(cfg, sched, with_mask):
    pipeline = cfg.train_dataloader.dataset.pipeline
    types = [t.type for t in pipeline]
    load = pipeline[types.index('LoadAnnotations')]
    assert load.with_bbox and bool(load.get('with_mask', False)) == with_mask
    if sched == '3x':
        choice = pipeline[types.index('RandomChoice')]
        flat = [t for branch in choice.transforms for t in branch]
        scales = {s[1] for t in flat if t.type == 'RandomChoiceResize' for s in t.scales if s[1] >= 480}
        assert min(scales) == 480 and max(scales) == 800
        assert any(t.type == 'RandomCrop' and tuple(t.crop_size) == (384, 600) for t in flat)
    else:
        assert 'RandomChoice' not in types


@pytest.mark.parametrize('path', TOY, ids=_name)
def test_toy_config(path):
    """Toy configs inherit a real config, run single-process on CPU (BN, no SyncBN) and train
    their small arch from scratch."""
    cfg = load(path)
    text = path.read_text()
    assert "_base_ = ['../" in text, 'toy configs inherit a real config'
    assert cfg.custom_imports.imports[0] == 'mmvit_plugin'
    assert 'SyncBN' not in cfg.pretty_text
    assert cfg.model.backbone.type == 'CSWin'
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=None)


@contextlib.contextmanager
def skip_weight_init():
    """Build without filling the weights (torch.nn.init.* are no-ops): these tests check the
    structure and shapes, and random initialisation of ~100M parameters dominates the build time.
    Any download attempt (the configs' init_cfg URLs are for training only) fails the test."""
    noop = lambda tensor, *args, **kwargs: tensor  # noqa: E731

    def no_download(url, *args, **kwargs):
        raise AssertionError(f'a config build tried to download {url}')

    with contextlib.ExitStack() as stack:
        for name in ('trunc_normal_', 'normal_', 'uniform_', 'kaiming_uniform_', 'kaiming_normal_',
                     'xavier_uniform_', 'xavier_normal_', 'constant_', 'zeros_', 'ones_'):
            stack.enter_context(mock.patch(f'torch.nn.init.{name}', noop))
        stack.enter_context(mock.patch('mmvit_plugin.checkpoint.download_checkpoint', no_download))
        yield


def _out_channels(backbone_cfg):
    """Channels of each level, from a forward pass of the backbone itself (cached per arch)."""
    key = repr(sorted((k, v) for k, v in backbone_cfg.items()
                      if k not in ('drop_path_rate', 'init_cfg', 'norm_cfg')))
    if key not in _CHANNELS:
        from mmengine.registry import MODELS
        cfg = dict(backbone_cfg, init_cfg=None)
        cfg.pop('norm_cfg', None)  # SyncBN needs a process group to train; BN has the same shapes
        with skip_weight_init():
            model = MODELS.build(cfg).eval()
        with torch.no_grad():
            outs = model(torch.randn(1, 3, 64, 64))
        _CHANNELS[key] = [o.shape[1] for o in outs]
    return _CHANNELS[key]


_CHANNELS = {}


@pytest.mark.parametrize('path', BUILT_HERE, ids=_name)
def test_builds_with_matching_channels(path):
    cfg = load(path)
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.default_scope)
    channels = _out_channels(cfg.model.backbone)
    if cfg.default_scope == 'mmseg':
        from mmseg.registry import MODELS
        assert list(cfg.model.decode_head.in_channels) == channels
        aux = cfg.model.get('auxiliary_head')  # UperNet's; Mask2Former (the toy one) has none
        assert aux is None or aux.in_channels == channels[aux.in_index]
    else:
        from mmdet.registry import MODELS
        assert list(cfg.model.neck.in_channels) == channels
    with skip_weight_init():
        model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == cfg.model.backbone.type
    assert model.backbone.out_channels == channels
    check_feature_channels(model)  # raises on a mismatch
    assert sum(p.numel() for p in model.parameters()) > 0


# --- The model zoo's metafile (configs/metafile.yaml) and docs/configs.md, generated from it ---

@lru_cache(maxsize=None)
def _zoo():
    from mmvit_plugin.benchmark.zoo import load_zoo
    return load_zoo()


def _zoo_model(path):
    return next(m for m in _zoo().models if m.config == path)


def test_every_config_has_a_metafile_entry():
    listed = [m.config for m in _zoo().models]
    assert sorted(set(CONFIGS) - set(listed)) == [], 'configs missing from configs/metafile.yaml'
    assert sorted(set(listed) - set(CONFIGS)) == [], 'metafile entries without a config'


def _number_pattern(value):
    """A regex for ``value`` as a number in text: 49.0 matches "49.0" and "49", not "49.47"."""
    text = f'{value:.4f}'.rstrip('0').rstrip('.')
    return rf'(?<![\d.]){re.escape(text)}' + (r'0*(?!\d)' if '.' in text else r'(\.0+)?(?![\d.])')


def _header(path):
    """The config's leading comment block, where it quotes its published results."""
    lines = path.read_text().splitlines()
    return '\n'.join(line for line in lines[:next(i for i, line in enumerate(lines)
                                                  if not line.startswith('#'))])


@pytest.mark.parametrize('path', FULL, ids=_name)
def test_metafile_figures_are_those_the_config_quotes(path):
    """The published figures in the metafile and in the config's header come from the same
    source; a figure changed in one place only fails here."""
    model, header = _zoo_model(path), _header(path)
    figures = [value for release in model.releases for value in release.metrics.values()]
    none = 'none published' in header or 'no published figure' in header
    assert bool(figures) != none
    for value in figures:
        assert re.search(_number_pattern(value), header), (
            f'{path.name}: the metafile\'s {value} is not in the header')
    complexity = model.complexity or {}
    if complexity and 'params' in header:  # not every header quotes the published size
        assert f'{complexity["Parameters (M)"]}M params' in header
        assert f'{complexity["FLOPs (G)"]}G FLOPs' in header


_PARAMETERS = {}  # the 1x and 3x configs of a detector build one model: counted once


@pytest.mark.parametrize('path', BUILT_HERE, ids=_name)
def test_metafile_parameters_are_the_models(path):
    """The measured parameter count in the metafile is that of the model the config builds."""
    import json
    cfg = load(path)
    key = cfg.model.to_dict()
    key['backbone'].pop('drop_path_rate', None)  # no parameter depends on it
    key = json.dumps(key, sort_keys=True, default=str)
    if key not in _PARAMETERS:
        from mmengine.registry import init_default_scope
        init_default_scope(cfg.default_scope)
        if cfg.default_scope == 'mmseg':
            from mmseg.registry import MODELS
        else:
            from mmdet.registry import MODELS
        with skip_weight_init():
            model = MODELS.build(cfg.model)
        _PARAMETERS[key] = sum(p.numel() for p in model.parameters())
    assert _zoo_model(path).metadata['Parameters'] == _PARAMETERS[key]


def test_docs_configs_md_is_generated_from_the_metafile():
    from mmvit_plugin.benchmark.zoo_docs import docs_block, zoo_docs
    docs = REPO / 'docs' / 'configs.md'
    assert docs_block(docs.read_text()) == zoo_docs(_zoo(), load), (
        'docs/configs.md differs from configs/metafile.yaml: run '
        'tools/benchmark_zoo.py --write-docs')


def test_readme_states_the_measured_flops_agreement():
    from mmvit_plugin.benchmark.zoo_docs import FLOPS_TOLERANCE, flops_deviation
    deviations = [d for d in map(flops_deviation, _zoo().models) if d is not None]
    close = sum(abs(d) <= FLOPS_TOLERANCE for d in deviations)
    claim = f'within 2 % of the published FLOPs for {close} of the {len(deviations)}'
    readme = ' '.join((REPO / 'README.md').read_text().split())
    assert FLOPS_TOLERANCE == 0.02 and claim in readme
