"""Swin weights from every ecosystem: each foreign module is built (small arch), randomised, saved in
its library's own format, loaded into our Swin three ways, and compared feature for feature.

Where the foreign module computes something else at some sizes (timm shifts before padding, HF
SwinModel shrinks windows to small maps), the comparison is at sizes where both are defined the
same way; docs/checkpoints.md has the figures."""
import warnings

import pytest
import torch
import torch.nn.functional as F

from checkpoint_layouts import (assert_same_features, features, load_three_ways, official_names,
                                randomize, save_safetensors)
from mmvit_plugin.checkpoint import CheckpointError
from mmvit_plugin.models.backbones.conversion import (SWIN_HF_BACKBONE as HF_BACKBONE,
                                                     SWIN_HF_CLASSIFIER as HF_CLASSIFIER,
                                                     SWIN_HF_MODEL as HF_MODEL,
                                                     SWIN_OFFICIAL_CLS as OFFICIAL_CLS,
                                                     SWIN_OFFICIAL_DENSE as OFFICIAL_DENSE,
                                                     SWIN_OPENMMLAB as OPENMMLAB, SWIN_TIMM as TIMM,
                                                     unfold_to_concat_order)
from mmvit_plugin.models.backbones.swin import Swin, convert_swin_checkpoint, swin_checkpoint_layout

ARCH = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
ODD_SIZES = [(97, 131), (333, 517)]


def build(**kwargs):
    return Swin(ARCH, drop_path_rate=0., **kwargs)


def load_all(path, tmp_path):
    return load_three_ways(build, path, 'swin', tmp_path, repr(ARCH))


def with_norms(model, levels):
    """Our output norms applied to a foreign module's pre-norm stage outputs (files of
    classifiers have no output norms; ours stay at whatever they are)."""
    out = []
    for i, x in enumerate(levels):
        norm = model.stages[i].out_norm
        x = F.layer_norm(x.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        out.append(x.permute(0, 3, 1, 2))
    return out


@pytest.fixture(autouse=True)
def quiet_and_seeded():
    torch.manual_seed(0)  # the inputs
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        yield


def test_unfold_order_is_the_inverse_of_openmmlabs_converter():
    """mmdet's own converter (official → Unfold order) undone exactly."""
    from mmdet.models.backbones.swin import swin_converter
    official = {'layers.0.downsample.reduction.weight': torch.randn(8, 16),
                'layers.0.downsample.norm.weight': torch.randn(16)}
    mm = {k[len('backbone.'):]: v for k, v in swin_converter(official).items()}
    for key, value in official.items():
        assert torch.equal(unfold_to_concat_order(mm[key.replace('layers', 'stages')]), value)


@pytest.mark.parametrize('library', ['mmseg', 'mmpretrain'])
def test_openmmlab_swin(tmp_path, library):
    """mmseg 1.x's SwinTransformer (== mmdet 3.x's, same keys) as its converted pretrain file
    (flat ``stages.*``); mmpretrain's as an ImageClassifier file (``backbone.`` + ``head.fc``)."""
    if library == 'mmseg':
        from mmseg.models.backbones import SwinTransformer
        theirs = SwinTransformer(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4),
                                 window_size=7, drop_path_rate=0.)
    else:
        from mmpretrain.models.backbones import SwinTransformer
        # pad_small_map: the dense behaviour (never shrink windows to the map)
        theirs = SwinTransformer(arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
                                 window_size=7, out_indices=(0, 1, 2, 3), pad_small_map=True,
                                 drop_path_rate=0.)
    randomize(theirs)
    theirs.eval()
    state = theirs.state_dict()
    assert swin_checkpoint_layout(state) == OPENMMLAB
    path = tmp_path / f'{library}.pth'
    if library == 'mmseg':
        torch.save(state, path)
    else:
        torch.save({'meta': {}, 'state_dict': {**{f'backbone.{k}': v for k, v in state.items()},
                                               'head.fc.weight': torch.randn(10, 128),
                                               'head.fc.bias': torch.randn(10)}}, path)
    ours = load_all(path, tmp_path)
    for size in ODD_SIZES:
        x = torch.randn(1, 3, *size)
        assert_same_features(features(ours, x), features(theirs, x), f'{library} {size}')


def timm_swin():
    from timm.models.swin_transformer import SwinTransformer
    # always_partition + dynamic size: the dense behaviour (windows never shrink to the map)
    return randomize(SwinTransformer(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4),
                                     window_size=7, num_classes=10, strict_img_size=False,
                                     always_partition=True))


@pytest.mark.parametrize('fmt', ['pth', 'safetensors'])
def test_timm_swin(tmp_path, fmt):
    """timm ≥ 0.9 (merges at the start of the next stage, ``head.fc``), as a .pth and as the hub's
    .safetensors. timm needs sides divisible by 4 and shifts before padding, so the comparison is at
    sizes whose every stage map is a multiple of the window (224×448, 448×224)."""
    theirs = timm_swin()
    state = theirs.state_dict()
    assert swin_checkpoint_layout(state) == TIMM
    assert 'layers.1.downsample.reduction.weight' in state and 'head.fc.weight' in state
    path = tmp_path / f'model.{fmt}'
    torch.save(state, path) if fmt == 'pth' else save_safetensors(state, path)
    ours = load_all(path, tmp_path)
    for size in [(224, 448), (448, 224)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected = with_norms(ours, theirs.forward_intermediates(x, intermediates_only=True))
        assert_same_features(features(ours, x), expected, f'timm {size}')


def hf_config(**kwargs):
    from transformers import SwinConfig
    return SwinConfig(embed_dim=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], window_size=7,
                      **kwargs)


def test_hugging_face_swin_backbone(tmp_path):
    """transformers' SwinBackbone saved with save_pretrained (model.safetensors): q/k/v fused,
    ``hidden_states_norms.stage{k}`` → ``norm{k-1}``; it pads like the official dense code."""
    from transformers import SwinBackbone
    theirs = randomize(SwinBackbone(hf_config(out_features=['stage1', 'stage2', 'stage3', 'stage4'])))
    theirs.save_pretrained(tmp_path / 'hub')
    path = tmp_path / 'hub' / 'model.safetensors'
    from safetensors.torch import load_file
    assert swin_checkpoint_layout(load_file(str(path))) == HF_BACKBONE
    ours = load_all(path, tmp_path)
    for size in ODD_SIZES:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected = theirs(x).feature_maps
        assert_same_features(features(ours, x), expected, f'HF backbone {size}')


@pytest.mark.parametrize('cls_name,size', [('SwinModel', (333, 517)),
                                           ('SwinForImageClassification', (257, 289))])
def test_hugging_face_swin_model(tmp_path, cls_name, size):
    """SwinModel / SwinForImageClassification (``swin.`` prefix, ``classifier``). They shrink the
    window of maps no larger than it (no shift), so the comparison is at sizes whose every stage
    map is larger than 7 (333×517, 257×289)."""
    import transformers
    theirs = randomize(getattr(transformers, cls_name)(hf_config(num_labels=10)))
    state = theirs.state_dict()
    assert swin_checkpoint_layout(state) == (HF_MODEL if cls_name == 'SwinModel' else HF_CLASSIFIER)
    path = save_safetensors(state, tmp_path / 'model.safetensors')
    encoder = theirs if cls_name == 'SwinModel' else theirs.swin
    ours = load_all(path, tmp_path)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        emb, dims = encoder.embeddings(x)
        hidden = encoder.encoder(emb, dims, output_hidden_states=True,
                                 output_hidden_states_before_downsampling=True)
        expected = with_norms(ours, hidden.reshaped_hidden_states[1:])
    assert_same_features(features(ours, x), expected, f'HF {cls_name} {size}')


def test_converter_is_idempotent_and_keeps_official_files():
    model = build()
    own = model.state_dict()
    assert convert_swin_checkpoint(own).keys() == own.keys()
    backbone = {k: v for k, v in own.items() if '.out_norm.' not in k}
    classification = official_names(backbone, 'swin')
    classification.update({'norm.weight': torch.ones(128), 'head.weight': torch.zeros(10, 128)})
    assert swin_checkpoint_layout(classification) == OFFICIAL_CLS
    assert list(convert_swin_checkpoint(classification)) == list(backbone) + ['norm.weight', 'head.weight']
    dense = official_names(own, 'swin')  # also what release 0.1 of ours wrote
    assert swin_checkpoint_layout(dense) == OFFICIAL_DENSE
    assert sorted(convert_swin_checkpoint(dense)) == sorted(own)
    timm_state = timm_swin().state_dict()
    once = convert_swin_checkpoint(timm_state)
    assert convert_swin_checkpoint(once).keys() == once.keys()


def test_foreign_file_that_does_not_fit_names_its_layout(tmp_path):
    """A timm file of another width: the error names the detected layout and the shapes."""
    from timm.models.swin_transformer import SwinTransformer
    other = SwinTransformer(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=7)
    path = save_safetensors(other.state_dict(), tmp_path / 'model.safetensors')
    with pytest.raises(CheckpointError, match='timm Swin layout.*does not fit'):
        build().load_pretrained(str(path))
    torch.save({'encoder.stages.0.embedding.convolution_embeddings.projection.weight':
                torch.zeros(64, 3, 7, 7)}, tmp_path / 'cvt.pth')
    with pytest.raises(CheckpointError, match=r'\(unknown layout\) does not fit'):
        build().load_pretrained(str(tmp_path / 'cvt.pth'))


def test_incomplete_hugging_face_block_is_refused():
    from transformers import SwinModel
    state = SwinModel(hf_config()).state_dict()
    del state['encoder.layers.0.blocks.0.attention.self.key.weight']
    with pytest.raises(CheckpointError, match='query, key and value'):
        convert_swin_checkpoint(state)
