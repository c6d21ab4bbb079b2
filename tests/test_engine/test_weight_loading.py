"""One rule for how well a checkpoint must fit, on every mmengine load path: evaluating and resuming
need every tensor; starting training refuses a file that fills less than half of the model and
warns about smaller gaps."""
import logging

import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope

import mmvit_plugin  # noqa: F401  (routes mmengine's loading through the rule)
from mmvit_plugin.checkpoint import CheckpointError
from mmvit_plugin.engine import load_purpose, load_weights
from mmvit_plugin.engine.weight_loading import describe_checkpoint, key_families
from mmvit_plugin.models.backbones.conversion import SWIN_OURS

HEAD = dict(type='UPerHead', in_channels=[32, 64, 128, 256], in_index=[0, 1, 2, 3],
            pool_scales=(1, 2), channels=16, dropout_ratio=0.1, num_classes=5,
            norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
SMALL = {'Swin': dict(embed_dims=32, depths=(2, 2, 6, 2), num_heads=(1, 2, 4, 8)),
         'CSWin': dict(embed_dims=32, depths=(1, 2, 6, 1), num_heads=(2, 2, 4, 8))}


def segmentor(backbone: str = 'CSWin', num_classes: int = 5):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0., 0., 0.], std=[1., 1., 1.]),
        backbone=dict(type=backbone, arch=SMALL[backbone]),
        decode_head=dict(HEAD, num_classes=num_classes)))
    for p in model.parameters():
        p.data.normal_()
    return model


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_evaluating_needs_every_tensor_and_names_what_is_missing_by_module():
    source, model = segmentor(), segmentor()
    model.apply(lambda m: [p.data.zero_() for p in m.parameters(recurse=False)])
    before = snapshot(model)
    no_head = {k: v for k, v in source.state_dict().items() if not k.startswith('decode_head.')}
    n_head = sum(1 for k in model.state_dict() if k.startswith('decode_head.')
                 and not k.endswith('num_batches_tracked'))
    with pytest.raises(CheckpointError) as err:
        load_weights(model, no_head, 'evaluate', source='seg.pth')
    message = str(err.value)
    assert f'decode_head: {n_head} tensors missing' in message
    assert 'seg.pth (a backbone or classification file' not in message
    assert 'an mmseg segmentor' not in message  # the file has no decode_head: not a segmentor
    assert 'backbone in the' in message and 'cannot be evaluated' in message
    # refused before anything was copied
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # the same file loads completely for training-start (backbone weights, head at its init)
    fit = load_weights(model, no_head, 'train', source='seg.pth')
    assert len(fit.missing) == n_head and not fit.mismatched
    assert torch.equal(model.backbone.state_dict()['patch_embed.proj.weight'],
                       source.backbone.state_dict()['patch_embed.proj.weight'])


def test_evaluating_refuses_wrong_shapes_and_resuming_too():
    source, model = segmentor(num_classes=7), segmentor(num_classes=5)
    for purpose in ('evaluate', 'resume'):
        with pytest.raises(CheckpointError, match=r'decode_head: 2 tensors of wrong shape.*'
                           r'decode_head\.conv_seg\.weight: file \(7, 16, 1, 1\) vs model '
                           r'\(5, 16, 1, 1\)'):
            load_weights(model, source.state_dict(), purpose)
    with pytest.raises(CheckpointError, match='--resume continues a run'):
        load_weights(model, source.state_dict(), 'resume')


def test_fine_tuning_to_another_class_count_is_a_warning_listing_the_keys(log_records):
    source, model = segmentor(num_classes=7), segmentor(num_classes=5)
    conv_seg = model.decode_head.conv_seg.weight.detach().clone()
    fit = load_weights(model, source.state_dict(), 'train', source='ade.pth')
    assert sorted(fit.mismatched) == ['decode_head.conv_seg.bias', 'decode_head.conv_seg.weight']
    assert torch.equal(model.decode_head.conv_seg.weight, conv_seg)  # left at its init
    for key, value in source.state_dict().items():
        if 'conv_seg' not in key:
            assert torch.equal(model.state_dict()[key], value), key
    assert any('another shape' in w and 'decode_head.conv_seg.weight (file (7, 16, 1, 1), '
               'model (5, 16, 1, 1))' in w for w in
               (r.getMessage() for r in log_records if r.levelno == logging.WARNING))


def test_another_backbones_whole_model_is_refused_even_for_training():
    """The issue's case: a UperNet-Swin checkpoint into UperNet-CSWin (same head channels)."""
    swin, cswin = segmentor('Swin'), segmentor('CSWin')
    before = snapshot(cswin)
    state = {f'module.{k}': v for k, v in swin.state_dict().items()}  # a DDP-saved file
    with pytest.raises(CheckpointError) as err:
        load_weights(cswin, {k[len('module.'):]: v for k, v in state.items()}, 'train',
                     source='upernet_swin.pth')
    message = str(err.value)
    assert message.startswith('upernet_swin.pth (an mmseg segmentor (backbone, decode_head), '
                              'backbone keys not in any CSWin layout) does not fit this '
                              'EncoderDecoder')
    assert 'backbone: ' in message and 'tensors missing' in message
    assert 'another model' in message
    assert all(torch.equal(v, before[k]) for k, v in cswin.state_dict().items())


def test_describe_checkpoint_names_the_kind_of_file():
    model = segmentor('Swin')
    backbone_only = model.backbone.state_dict()
    assert describe_checkpoint(model, backbone_only).startswith('a backbone or classification file')
    detector = {'backbone.patch_embed.proj.weight': torch.zeros(1), 'rpn_head.x': torch.zeros(1)}
    assert describe_checkpoint(model, detector).startswith('an mmdet two-stage detector')
    assert describe_checkpoint(model.backbone, backbone_only) == f'{SWIN_OURS} layout'
    whole = {f'backbone.{k}': v for k, v in backbone_only.items()}
    whole['decode_head.conv_seg.weight'] = torch.zeros(1)
    assert describe_checkpoint(model, whole) == (f'an mmseg segmentor (backbone, decode_head), '
                                                 f'backbone in the {SWIN_OURS} layout')


def test_mmengine_load_paths_follow_the_purpose_of_the_runner_entry_point(tmp_path):
    """mmengine.runner.load_checkpoint (init_model, PretrainedInit) is a training-start load unless
    the caller says otherwise; inside an evaluation the same call is refused."""
    from mmengine.runner import load_checkpoint
    source, model = segmentor(num_classes=7), segmentor(num_classes=5)
    path = tmp_path / 'seg.pth'
    torch.save({'state_dict': source.state_dict(), 'meta': {}}, path)
    load_checkpoint(model, str(path))  # warning only
    with load_purpose('evaluate'), pytest.raises(CheckpointError, match=rf'{path} \(an mmseg'):
        load_checkpoint(model, str(path))
    with pytest.raises(CheckpointError, match='strict loading was asked for'):
        load_checkpoint(model, str(path), strict=True)


class _Toy(BaseModel):
    """Three linear layers: a file without ``head`` fills 4 of its 6 tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.body, self.head = nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.head(self.body(self.stem(torch.stack(inputs))))
        return {'loss': out.sum()} if mode == 'loss' else list(out)


class _Seen(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results.append(len(data_samples))

    def compute_metrics(self, results):
        return {'seen': sum(results)}


def _runner(tmp_path, **kwargs):
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner
    loader = dict(batch_size=2, dataset=[dict(inputs=torch.ones(2), data_samples=0)] * 4,
                  sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='pseudo_collate'))
    return Runner(model=_Toy(), work_dir=str(tmp_path / 'work'), train_dataloader=loader,
                  train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=5),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)),
                  test_dataloader=loader, test_evaluator=Evaluator([_Seen()]),
                  test_cfg=dict(), default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
                  experiment_name=f'toy_{tmp_path.name}', **kwargs)


def test_runner_entry_points_apply_their_rule(tmp_path):
    """Runner.test refuses a file without the head; Runner.train (load_from) starts from it with
    a warning; Runner.resume refuses it."""
    no_head = tmp_path / 'no_head.pth'
    torch.save({'state_dict': {k: v for k, v in _Toy().state_dict().items()
                               if not k.startswith('head.')}}, no_head)
    with pytest.raises(CheckpointError, match=r'only 4 of its 6 tensors.*head: 2 tensors missing'
                       r'.*cannot be evaluated'):
        _runner(tmp_path / 'a', load_from=str(no_head)).test()
    _runner(tmp_path / 'b', load_from=str(no_head)).train()
    with pytest.raises(CheckpointError, match='--resume continues a run'):
        _runner(tmp_path / 'c', load_from=str(no_head), resume=True).train()
    whole = tmp_path / 'b' / 'work' / 'epoch_1.pth'
    assert _runner(tmp_path / 'd', load_from=str(whole)).test() == {'seen': 4}


def test_key_families():
    keys = [f'layers.{i}.blocks.{j}.attn.qkv.weight' for i in range(2) for j in range(3)]
    keys += ['norm0.weight', 'head.weight', '0.weight']
    assert key_families(keys, limit=2) == ('layers.*.blocks.*.attn.qkv.weight (6), '
                                           'norm0.weight (1) and 2 more families')
    assert key_families([]) == 'none'
    assert key_families(['0.weight']) == '*.weight (1)'


def test_a_test_time_augmentation_model_loads_into_the_model_it_wraps():
    """mmseg's/mmdet's --tta wrap the model (``module.``); the file holds the model's own keys."""
    from mmseg.registry import MODELS
    source, model = segmentor(), segmentor()
    tta = MODELS.build(dict(type='SegTTAModel', module=model))
    fit = load_weights(tta, source.state_dict(), 'evaluate')
    assert fit.filled == fit.total and not fit.missing
    assert torch.equal(model.decode_head.conv_seg.weight, source.decode_head.conv_seg.weight)
