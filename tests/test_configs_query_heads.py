"""The query-based heads with our backbones: Mask2Former (ADE20K semantic, COCO instance, COCO
panoptic) and DINO (4 scales, COCO) configs, configs/{mask2former,dino}_*.py.

They inherit mmseg's / mmdet's own head recipes (configs/_base_/mask2former_*.py, dino_coco_12e.py)
rather than copy them: what they resolve to is mm's recipe but for the backbone, its wiring and the
documented additions (checked against the installed mmseg / mmdet, so an mm upgrade that changes
its recipe shows here). Every config builds through its registry at full size (no forward: that
is the time-consuming part); per backbone family and head, one training step and one inference
on CPU at a small input, from the real config with a small backbone arch and fewer queries and
layers. The optimizer keeps the heads' parameter-wise rules, with layer-wise lr decay switchable.
That each config carries its recipe's weights and the layout rules of every leaf:
tests/test_configs.py; that it resolves as recorded: tests/test_configs_resolved.py.
"""
import copy
import re
from functools import lru_cache
from pathlib import Path

import pytest
import torch

from backbone_checks import SMALL_ARCHS
from mmvit_plugin.models import check_feature_channels
from mmvit_plugin.testing import random_det_batch, random_seg_batch
from test_configs import (CONFIG_DIR, QUERY_HEAD_NAMES, _bases, _header, _name, load,
                          skip_weight_init)

QUERY_HEAD_CONFIGS = [CONFIG_DIR / name for name in QUERY_HEAD_NAMES]

#: Recipe base -> the mm config it inherits (its first base).
RECIPES = {
    'mask2former_ade20k_160k.py': 'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py',
    'mask2former_coco_instance.py': 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
    'mask2former_coco_panoptic.py':
    'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py',
    'dino_coco_12e.py': 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
}
#: The 640 recipe is the 512 base with mmseg's 640 data; compared with mmseg's own 640 config.
MMSEG_640 = ('mmseg::mask2former/'
             'mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640.py')
#: Where each recipe wires the backbone's channels.
WIRED = {'decode_head', 'panoptic_head', 'neck'}
#: The backbone's lr multiplier of mm's Mask2Former and DINO recipes (custom_keys 'backbone').
BACKBONE_LR_MULT = 0.1
#: Mask2Former's embeddings without weight decay (mm's recipes).
MASK2FORMER_EMBEDDINGS = ('query_embed', 'query_feat', 'level_embed')

FAMILY_CONFIGS = {'Swin': 'swin_t', 'CSWin': 'cswin_t', 'CvT': 'cvt_13', 'MPViT': 'mpvit_s'}


def recipe_base(path: Path) -> str:
    """The name of the configs/_base_/ recipe a leaf inherits (its first base)."""
    return _bases(path)[0].rsplit('/', 1)[-1]


# --- what the configs resolve to: mm's recipe, our backbone, the documented additions --------------

@lru_cache(maxsize=None)
def mm_config(scoped_path: str):
    """mm's config as our configs see it: through a ``_base_`` (``mmseg::...``)."""
    import tempfile

    from mmengine.config import Config
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'mm.py'
        path.write_text(f'_base_ = [{scoped_path!r}]\n')
        return Config.fromfile(str(path)).to_dict()


def _plain(value):
    """A resolved value as plain data: tuples as lists, ConfigDicts as dicts, without the
    ``_scope_`` keys mmengine adds to some dicts of a scoped base (which ones depends on how a
    file reaches them; every config here runs in its mm default scope anyway)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _without(d: dict, *keys) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


@pytest.mark.parametrize('path', QUERY_HEAD_CONFIGS, ids=_name)
def test_resolves_to_mms_recipe_with_our_backbone(path):
    cfg = _plain(load(path).to_dict())
    base = recipe_base(path)
    in640 = base == 'mask2former_ade20k_640_160k.py'
    mm = _plain(mm_config(MMSEG_640 if in640 else RECIPES[base]))
    own = (CONFIG_DIR / '_base_' / base).resolve()
    chain = _bases(own) if not in640 else _bases(own.parent / 'mask2former_ade20k_160k.py')
    assert chain[0] == RECIPES['mask2former_ade20k_160k.py' if in640 else base], chain

    # the model: mm's but for the backbone and the channels wired to it
    model, mm_model = cfg['model'], mm['model']
    assert model['backbone']['type'] in ('Swin', 'CSWin', 'CvT', 'MPViT')
    assert mm_model['backbone']['type'] in ('ResNet', 'SwinTransformer')  # replaced, not merged
    assert set(model) == set(mm_model)
    dino = base == 'dino_coco_12e.py'
    wired = cfg['backbone_channels'][1:] if dino else cfg['backbone_channels']
    for key in set(model) - {'backbone'}:
        ours, theirs = model[key], mm_model[key]
        if key in WIRED:
            assert ours.pop('in_channels') == wired, key
            theirs.pop('in_channels')
        if key == 'data_preprocessor' and in640:  # test_cfg=None: mmseg's 640 has none
            assert ours.pop('test_cfg') is None and 'test_cfg' not in theirs
        assert ours == theirs, key
    if dino:
        assert model['backbone']['out_indices'] == [1, 2, 3]  # strides 8-32, as mm's ResNet-50
        assert mm_model['backbone']['out_indices'] == [1, 2, 3]
    else:
        assert 'out_indices' not in model['backbone']  # the four levels, the default

    # data, schedule, evaluation: mm's (our COCO training sets log what they filter)
    for key in ('train_pipeline', 'test_pipeline', 'val_dataloader', 'test_dataloader',
                'val_evaluator', 'test_evaluator', 'train_cfg', 'val_cfg', 'test_cfg',
                'param_scheduler', 'default_hooks', 'default_scope', 'env_cfg', 'auto_scale_lr'):
        assert cfg.get(key) == mm.get(key), key
    train_set, mm_train_set = cfg['train_dataloader']['dataset'], mm['train_dataloader']['dataset']
    reporting = train_set['type'] == 'ReportingCocoDataset'
    if mm_train_set['type'] == 'CocoDataset':
        assert train_set.pop('type') == 'ReportingCocoDataset'
        mm_train_set.pop('type')
    assert cfg['train_dataloader'] == mm['train_dataloader']
    assert cfg['num_gpus'] * cfg['train_dataloader']['batch_size'] == 16
    assert cfg['load_from'] is None

    # the optimizer: mm's, its paramwise rules kept, ours added, the layer-decay constructor
    optim, mm_optim = cfg['optim_wrapper'], mm['optim_wrapper']
    assert _without(optim, 'paramwise_cfg', 'constructor') == _without(mm_optim, 'paramwise_cfg')
    assert optim['constructor'] == 'ViTLayerDecayOptimWrapperConstructor'
    rules, mm_rules = optim['paramwise_cfg'], mm_optim['paramwise_cfg']
    if in640:  # mmseg's Swin-L recipe lists its Swin's norms; ours inherits its 512 (ResNet) rules
        mm_rules = _plain(mm_config(RECIPES['mask2former_ade20k_160k.py']))['optim_wrapper'][
            'paramwise_cfg']
    assert rules['layer_decay_rate'] == 1.0  # no layer-wise decay unless asked for
    assert rules.get('norm_decay_mult', 0) == 0
    for key, rule in mm_rules['custom_keys'].items():
        assert rules['custom_keys'][key] == rule, key
    assert mm_rules['custom_keys']['backbone']['lr_mult'] == BACKBONE_LR_MULT
    for key in ('norm', 'relative_position_bias_table', 'absolute_pos_embed', 'pos_embed',
                'cls_token'):
        expected = dict(decay_mult=0.0)
        if key != 'norm':  # backbone names, longer than 'backbone': they carry its lr_mult
            expected['lr_mult'] = BACKBONE_LR_MULT
        assert rules['custom_keys'][key] == expected, key

    imports = cfg['custom_imports']['imports']
    assert 'mmvit_plugin' in imports and cfg['custom_imports']['allow_failed_imports'] is False
    assert ('mmdet.models' in imports) == (cfg['default_scope'] == 'mmseg')
    assert ('mmvit_plugin.datasets' in imports) == reporting
    assert cfg['custom_hooks'] == [dict(type='RandomStateHook'), dict(type='PlainParamGroupsHook')]


def mm_swin_drop_path(path: Path):
    """mm's drop path for Swin in the recipe this config follows (None: not a Swin config, or no
    mm recipe with Swin)."""
    cfg = load(path)
    if cfg.model.backbone.type != 'Swin':
        return None
    return {'mask2former_ade20k_160k.py': 0.3, 'mask2former_ade20k_640_160k.py': 0.3,
            'mask2former_coco_instance.py': 0.3, 'mask2former_coco_panoptic.py': 0.3,
            'dino_coco_12e.py': None}[recipe_base(path)]


@pytest.mark.parametrize('path', QUERY_HEAD_CONFIGS, ids=_name)
def test_swin_configs_take_mms_drop_path(path):
    """The Swin Mask2Former leaves take mm's drop path (0.3; DINO-4scale Swin has no mm recipe: the
    backbone base's value)."""
    expected = mm_swin_drop_path(path)
    if expected is not None:
        assert load(path).model.backbone.drop_path_rate == expected


# --- building: every config at full size ------------------------------------------------------------

def _registry(cfg):
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    return MODELS


def wired_channels(cfg) -> list:
    """The channels the config's head or neck expects from the backbone."""
    if cfg.default_scope == 'mmseg':
        return list(cfg.model.decode_head.in_channels)
    if 'panoptic_head' in cfg.model:
        return list(cfg.model.panoptic_head.in_channels)
    return list(cfg.model.neck.in_channels)


@lru_cache(maxsize=None)
def _zoo():
    from mmvit_plugin.benchmark.zoo import load_zoo
    return load_zoo()


def _zoo_parameters(path: Path):
    return next(m for m in _zoo().models if m.config == path).metadata['Parameters']


@pytest.mark.parametrize('path', QUERY_HEAD_CONFIGS, ids=_name)
def test_builds_wired_to_the_backbone(path):
    """Full size, through mmseg's / mmdet's registry, without initialising the weights (no
    download, no forward): the head or neck reads exactly the backbone's levels, and the metafile's
    parameter count is this model's."""
    cfg = copy.deepcopy(load(path))
    if cfg.model.backbone.get('norm_cfg', {}).get('type') == 'SyncBN':
        cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)  # same parameters
    with skip_weight_init():
        model = _registry(cfg).build(cfg.model)
    assert type(model.backbone).__name__ == cfg.model.backbone.type
    assert model.backbone.out_channels == wired_channels(cfg)
    check_feature_channels(model)
    assert sum(p.numel() for p in model.parameters()) == _zoo_parameters(path)


# --- one training step and one inference per family and head, at a small size -------------------

def small_config(path: Path, backbone_type: str, frozen_stages: int = -1):
    """The config at ``path`` with the small arch of ``backbone_type`` (random init, BN) wired to
    its head, fewer queries and layers, and inputs padded to the small test size only."""
    from mmengine.registry import MODELS
    cfg = copy.deepcopy(load(path))
    assert cfg.model.backbone.type == backbone_type
    backbone = dict(type=backbone_type, **SMALL_ARCHS[backbone_type], frozen_stages=frozen_stages,
                    init_cfg=None)
    if 'out_indices' in cfg.model.backbone:
        backbone['out_indices'] = cfg.model.backbone.out_indices
    cfg.model.backbone = backbone
    channels = MODELS.build(dict(backbone)).out_channels
    head = cfg.model.get('decode_head') or cfg.model.get('panoptic_head')
    if head is not None:  # Mask2Former: 10 queries, 3 decoder layers, 1 pixel-decoder layer
        head.in_channels = channels
        head.num_queries = 10
        head.transformer_decoder.num_layers = 3
        head.pixel_decoder.encoder.num_layers = 1
        train_cfg = cfg.model.train_cfg if 'num_points' in cfg.model.train_cfg else head.train_cfg
        train_cfg.num_points = 256
    else:  # DINO: 20 queries, 10 denoising queries, 1 encoder and 1 decoder layer
        cfg.model.neck.in_channels = channels
        cfg.model.num_queries = 20
        cfg.model.dn_cfg.group_cfg.num_dn_queries = 10
        cfg.model.encoder.num_layers = cfg.model.decoder.num_layers = 1
    return cfg


def _assert_backbone_trains(model):
    trainable = [(n, p) for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, f'backbone parameters without a gradient: {missing[:5]}'
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)
    assert sum(p.grad.abs().sum() for _, p in trainable) > 0


def run_train_step_and_inference(cfg, batch, size):
    """One optimizer step (the config's optim_wrapper, paramwise rules included) and one predict."""
    from mmengine.optim import build_optim_wrapper
    model = _registry(cfg).build(cfg.model)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss), losses
    loss.backward()
    _assert_backbone_trains(model)
    before = {n: p.detach().clone() for n, p in model.backbone.named_parameters()}
    optim_wrapper.step()
    moved = [n for n, p in model.backbone.named_parameters() if not torch.equal(p, before[n])]
    assert moved and all(p.requires_grad for n, p in model.backbone.named_parameters()
                         if n in moved), 'the optimizer step moved no (or a frozen) parameter'
    model.eval()
    with torch.no_grad():
        return model, model.test_step(batch)


def _query_config(kind: str, family: str) -> Path:
    variant = FAMILY_CONFIGS[family]
    name = {'seg': f'mask2former_{variant}_ade20k.py',
            'instance': f'mask2former_{variant}_coco_instance.py',
            'panoptic': f'mask2former_{variant}_coco_panoptic.py',
            'dino': f'dino_{variant}_coco_12e.py'}[kind]
    return CONFIG_DIR / name


@pytest.fixture
def small_step(one_torch_thread):
    """Seeded, one torch thread (small, overhead-bound tensors), and mmengine's INFO lines (every
    parameter's init and paramwise options) not formatted."""
    import logging

    from mmengine.logging import MMLogger
    torch.manual_seed(0)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.mark.parametrize('family', list(FAMILY_CONFIGS))
def test_mask2former_semantic_trains_and_predicts(family, small_step):
    size = (64, 64)
    cfg = small_config(_query_config('seg', family), family)
    cfg.model.data_preprocessor.size = size
    batch = random_seg_batch(size, batch=2, num_classes=cfg.model.decode_head.num_classes)
    _, results = run_train_step_and_inference(cfg, batch, size)
    assert len(results) == 2
    for result in results:
        assert result.pred_sem_seg.data.shape == (1, *size)
        assert result.seg_logits.data.shape == (cfg.model.decode_head.num_classes, *size)
        assert torch.isfinite(result.seg_logits.data).all()


def _fix_batch_pad(cfg, size):
    """mmdet's Mask2Former pads every training batch to 1024x1024: to the test size instead."""
    cfg.model.data_preprocessor.batch_augments = [
        dict(augment, size=size) for augment in cfg.model.data_preprocessor.batch_augments]


@pytest.mark.parametrize('family', list(FAMILY_CONFIGS))
def test_mask2former_instance_trains_and_predicts(family, small_step):
    size = (64, 64)
    cfg = small_config(_query_config('instance', family), family)
    _fix_batch_pad(cfg, size)
    batch = random_det_batch(size, batch=2, num_classes=80, num_boxes=3)
    _, results = run_train_step_and_inference(cfg, batch, size)
    for result in results:
        pred = result.pred_instances
        assert len(pred) == cfg.model.test_cfg.max_per_image  # the top of queries x classes
        assert pred.masks.shape[-2:] == size and torch.isfinite(pred.bboxes).all()


def random_panoptic_batch(size, num_things=80, num_stuff=53, generator=None):
    """``random_det_batch`` with thing instances and a semantic map of stuff classes
    (``num_things``.. ``num_things + num_stuff - 1``) where no thing is, as mmdet's
    LoadPanopticAnnotations gives."""
    from mmengine.structures import PixelData
    batch = random_det_batch(size, batch=2, num_classes=num_things, num_boxes=3,
                             generator=generator)
    for sample in batch['data_samples']:
        things = torch.from_numpy(sample.gt_instances.masks.masks).bool().any(0)
        stuff = torch.randint(num_things, num_things + num_stuff, (1, *size), generator=generator)
        sample.gt_sem_seg = PixelData(sem_seg=torch.where(things, torch.tensor(255), stuff))
    return batch


@pytest.mark.parametrize('family', ['Swin'])
def test_mask2former_panoptic_trains_and_predicts(family, small_step):
    size = (64, 64)
    cfg = small_config(_query_config('panoptic', family), family)
    _fix_batch_pad(cfg, size)
    _, results = run_train_step_and_inference(cfg, random_panoptic_batch(size), size)
    for result in results:
        assert result.pred_panoptic_seg.sem_seg.shape == (1, *size)


@pytest.mark.parametrize('family', list(FAMILY_CONFIGS))
def test_dino_trains_and_predicts_with_frozen_stages(family, small_step):
    """DINO reads levels 1..3; with the stem and stage 0 frozen too, what trains gets gradients, the
    frozen parameters none and no optimizer group."""
    size = (96, 128)
    cfg = small_config(_query_config('dino', family), family, frozen_stages=1)
    batch = random_det_batch(size, batch=2, num_classes=80, num_boxes=3)
    model, results = run_train_step_and_inference(cfg, batch, size)
    assert model.backbone.out_indices == (1, 2, 3)
    frozen = [p for m in model.backbone.stage_modules(-1) + model.backbone.stage_modules(0)
              for p in m.parameters()]
    assert frozen and not any(p.requires_grad or p.grad is not None for p in frozen)
    for result in results:
        pred = result.pred_instances
        assert len(pred) == cfg.model.test_cfg.max_per_img
        assert torch.isfinite(pred.bboxes).all() and torch.isfinite(pred.scores).all()


# --- the optimizer's parameter groups -----------------------------------------------------------

def _groups_by_param(optimizer, model):
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: group for group in optimizer.param_groups for p in group['params']}


@pytest.mark.parametrize('layer_decay_rate', [1.0, 0.9])
def test_optimizer_keeps_the_heads_rules(layer_decay_rate, small_step):
    """Mask2Former's query embeddings and level embeddings get no weight decay (decay_mult 0), the
    backbone a tenth of the lr (times the layer-wise decay when switched on), the package's
    no-decay names none, the heads their full lr."""
    from mmengine.optim import build_optim_wrapper
    cfg = small_config(_query_config('seg', 'Swin'), 'Swin')
    cfg.optim_wrapper.paramwise_cfg.layer_decay_rate = layer_decay_rate
    model = _registry(cfg).build(cfg.model)
    groups = _groups_by_param(build_optim_wrapper(model, cfg.optim_wrapper).optimizer, model)
    base_lr, base_wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    embeddings = [n for n in groups if n.split('.')[-2] in MASK2FORMER_EMBEDDINGS]
    assert {n.split('.')[-2] for n in embeddings} == set(MASK2FORMER_EMBEDDINGS)
    for name in embeddings:
        assert groups[name]['decay_mult'] == 0 and groups[name]['weight_decay'] == 0, name
        assert groups[name]['lr'] == base_lr, name
    backbone = model.backbone
    tables = [n for n in groups if 'relative_position_bias_table' in n]
    assert tables
    for name, group in groups.items():
        param = dict(model.named_parameters())[name]
        if name.startswith('backbone.'):
            depth, num_depths = backbone.get_layer_depth(name)
            scale = layer_decay_rate**(num_depths - 1 - depth)
            assert group['lr'] == pytest.approx(base_lr * BACKBONE_LR_MULT * scale), name
            no_decay = param.ndim == 1 or name in tables
            assert group['weight_decay'] == (0 if no_decay else base_wd), name
        else:
            assert group['lr'] == base_lr, name
            if param.ndim == 1 or name in embeddings:
                assert group['weight_decay'] == 0, name
            else:
                assert group['weight_decay'] == base_wd, name
    if layer_decay_rate < 1:  # the first block learns slower than the last
        first = next(n for n in groups if n.startswith('backbone.') and 'blocks' in n)
        last = [n for n in groups if n.startswith('backbone.') and 'blocks' in n][-1]
        assert groups[first]['lr'] < groups[last]['lr']


def test_an_unknown_paramwise_key_is_an_error(small_step):
    """The layer-decay constructor the query-head configs use refuses keys it cannot honour."""
    from mmengine.optim import build_optim_wrapper
    cfg = small_config(_query_config('dino', 'Swin'), 'Swin')
    cfg.optim_wrapper.paramwise_cfg.layer_decay = 0.9  # a typo of layer_decay_rate
    model = _registry(cfg).build(cfg.model)
    with pytest.raises(ValueError, match=re.escape("unknown paramwise_cfg key(s) ['layer_decay']")):
        build_optim_wrapper(model, cfg.optim_wrapper)


@pytest.mark.parametrize('path', QUERY_HEAD_CONFIGS, ids=_name)
def test_header_cites_its_published_figure_or_says_none(path):
    """A header with published figures names their source (the figures themselves are held to the
    metafile's by tests/test_configs.py); one without says so."""
    zoo = _zoo()
    model = next(m for m in zoo.models if m.config == path)
    header = ' '.join(_header(path).replace('#', ' ').split())
    assert ('no published figure' in header) != bool(model.releases), header
    for release in model.releases:
        assert zoo.source_title(release.source) in header, (release.source, header)
