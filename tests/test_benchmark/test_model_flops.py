"""mmvit_plugin.benchmark.model_flops on the toy configs at small inputs: the whole-model count
against independent counts (mmseg's own tensor path, the backbone alone, parameter sums), and the
table. The command line (tools/get_flops.py: JSON, errors): tests/test_tools/test_get_flops.py."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from mmvit_plugin.apis.config import load_config
from mmvit_plugin.benchmark import model_flops
from mmvit_plugin.benchmark.flops import count_flops

REPO = Path(__file__).resolve().parents[2]
SEG_CFG = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'
DET_CFG = REPO / 'configs' / 'toy' / 'mask_rcnn_cswin_toy.py'
KEYS = {'config', 'scope', 'model', 'input_shape', 'macs', 'params', 'inference_params',
        'other_macs', 'modules', 'rois', 'mask_rois_counted', 'structural_zeros', 'uncounted_ops',
        'torch'}


def measure(config, *shape):
    """The counts (JSON-ready, as tools/get_flops.py --json writes them) and the table."""
    result = model_flops.measure(load_config(str(config)), shape)
    json.dumps(result)  # JSON-ready, as --json writes it
    return result, model_flops.format_report(result)


@pytest.fixture(scope='module')
def seg_64x128():
    return measure(SEG_CFG, 64, 128)


def build_seg_model():
    """The toy segmentor, built here without the tool (mmseg's registry and its own forward)."""
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    return revert_sync_batchnorm(MODELS.build(Config.fromfile(SEG_CFG).model)).eval()


def test_segmentor_total_matches_independent_counts(seg_64x128):
    result, table = seg_64x128
    assert set(result) == KEYS
    assert result['scope'] == 'mmseg' and result['model'] == 'EncoderDecoder'
    assert result['input_shape'] == [1, 3, 64, 128]
    modules = result['modules']
    assert list(modules) == ['backbone', 'decode_head', 'auxiliary_head']
    assert [m['in_total'] for m in modules.values()] == [True, True, False]
    assert result['macs'] == modules['backbone']['macs'] + modules['decode_head']['macs']
    assert modules['auxiliary_head']['macs'] > 0 and result['other_macs'] == 0

    model = build_seg_model()
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        # mmseg's get_flops path: model(inputs) in mode 'tensor' = extract_feat + decode_head
        whole, _ = count_flops(model, (x, ))
        backbone, by_op = count_flops(model.backbone, (x, ))
    assert result['macs'] == whole
    assert modules['backbone']['macs'] == backbone < whole
    assert by_op['scaled_dot_product_attention'] > 0  # counted, not left at zero
    assert result['params'] == sum(p.numel() for p in model.parameters())
    aux_params = sum(p.numel() for p in model.auxiliary_head.parameters())
    assert modules['auxiliary_head']['params'] == aux_params > 0
    assert result['inference_params'] == result['params'] - aux_params

    assert 'input 1x3x64x128' in table and f'{result["macs"] / 1e9:.2f}' in table
    assert 'auxiliary_head *' in table and 'backbone + decode_head' in table


def test_segmentor_count_follows_the_shape(seg_64x128):
    small, _ = seg_64x128
    square, _ = measure(SEG_CFG, 128, 128)
    assert square['input_shape'] == [1, 3, 128, 128]
    assert 1.8 < square['macs'] / small['macs'] < 2.2  # twice the area, about twice the work
    assert square['params'] == small['params']


def test_detector_counts_rpn_and_roi_heads():
    result, table = measure(DET_CFG, 64, 96)
    assert result['scope'] == 'mmdet' and result['model'] == 'MaskRCNN'
    modules = result['modules']
    assert list(modules) == ['backbone', 'neck', 'rpn_head', 'roi_head']
    assert all(m['in_total'] and m['macs'] > 0 for m in modules.values())
    assert result['macs'] == sum(m['macs'] for m in modules.values()) + result['other_macs']
    assert result['params'] == result['inference_params']
    # the RoI heads run on test_cfg.rpn.max_per_img (300 in the toy config) proposals, whatever
    # the random-weight RPN's NMS keeps, and the mask head on the first 100 (mmdet 2.x's get_flops)
    assert result['rois'] == dict(bbox_head=300, mask_head=100)
    assert 'RoIAlignFunction' in ' '.join(result['uncounted_ops'])  # no MACs: listed, not hidden
    assert f'RoIs: bbox_head {result["rois"]["bbox_head"]}, mask_head' in table


def test_shapes():
    assert model_flops.DEFAULT_SHAPES == {'mmseg': (512, 2048), 'mmdet': (1280, 800)}
    assert model_flops.parse_shape(None) is None
    assert model_flops.parse_shape([640]) == (640, 640)
    assert model_flops.parse_shape([512, 1024]) == (512, 1024)
    for shape in ([64, 64, 64], [16, 64], [0]):
        with pytest.raises(SystemExit, match='--shape takes H W or one size N'):
            model_flops.parse_shape(shape)


def test_cascade_mask_heads_count_on_the_first_100_rois(tmp_path):
    """Cascade Mask R-CNN (a small Swin, few proposals): RoIs of the ModuleList heads are recorded,
    and the three mask heads count on 100 of them, as mmdet 2.x's get_flops (the papers)."""
    config = tmp_path / 'small_cascade.py'
    config.write_text(
        f"_base_ = ['{REPO / 'configs' / 'cascade_mask_rcnn_swin_t_coco_3x.py'}']\n"
        "model = dict(\n"
        "    backbone=dict(arch=dict(_delete_=True, embed_dims=16, depths=(1, 1, 1, 1),\n"
        "                            num_heads=(1, 1, 1, 1))),\n"
        "    neck=dict(in_channels=[16, 32, 64, 128]),\n"
        "    test_cfg=dict(rpn=dict(max_per_img=150)))\n")
    result, table = measure(config, 64, 96)
    assert result['model'] == 'CascadeRCNN'
    rois = result['rois']
    assert rois == dict(bbox_head=150, mask_head=150)  # 3.x: the mask heads see every proposal
    assert result['mask_rois_counted'] == 100
    assert 'Mask heads counted on the first 100 RoIs' in table
    assert result['macs'] == sum(m['macs'] for m in result['modules'].values()) + result['other_macs']


def test_mask_head_excess():
    report = SimpleNamespace(by_module={'roi_head.mask_head': 3000})
    assert model_flops.mask_head_excess(report, {'mask_head': 300}) == 2000
    assert model_flops.mask_head_excess(report, {'mask_head': 100}) == 0
    assert model_flops.mask_head_excess(report, {}) == 0
