"""tools/export_onnx.py's command line: a checked file is written, one that does not agree never
is, a whole UperNet end to end, and the errors (the export and its check:
tests/test_deploy/test_onnx.py)."""
import json
import textwrap

import pytest

from onnx_modules import TinyDetector
from tool_cli import REPO, run_tool, run_tool_main

SMALL_CVT = dict(embed_dims=(16, 32, 48, 48), num_heads=(1, 2, 3, 3), depths=(1, 1, 1, 1))


@pytest.fixture
def tiny_model(monkeypatch):
    """The toy Mask R-CNN config, built as :class:`TinyDetector` (seconds to export)."""
    from mmvit_plugin.deploy import onnx as deploy
    monkeypatch.setattr(deploy, 'build_model', lambda cfg: TinyDetector().eval())
    return REPO / 'configs' / 'toy' / 'mask_rcnn_cswin_toy.py'


def test_cli_writes_a_checked_file(tiny_model, tmp_path, capsys):
    out, report_file = tmp_path / 'sub' / 'model.onnx', tmp_path / 'report.json'
    assert run_tool_main('export_onnx', [tiny_model, '--out', out, '--shape', '64', '80',
                                         '--json', report_file]) == 0
    assert out.is_file() and sorted(p.name for p in out.parent.iterdir()) == ['model.onnx']
    report = json.loads(report_file.read_text())
    assert report['ok'] and len(report['checks']) == 3
    assert report['dynamic_ranges']['height'][1] is None
    text = capsys.readouterr().out
    assert 'backbone + neck of the detector' in text or 'backbone (the detector has no neck)' in text
    assert 'mmdeploy' in text and 'wrote' in text


def test_cli_refuses_to_write_a_file_that_disagrees(tiny_model, tmp_path, capsys):
    out, report_file = tmp_path / 'model.onnx', tmp_path / 'report.json'
    assert run_tool_main('export_onnx', [tiny_model, '--out', out, '--shape', '64', '80',
                                         '--rtol', '1e-12', '--json', report_file]) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [report_file]
    assert 'was not written' in capsys.readouterr().err
    report = json.loads(report_file.read_text())
    assert not report['ok'] and any(not row['ok'] for row in report['checks'])


def test_bad_arguments_are_errors(capsys):
    for argv, message in ((['cfg.py'], 'the following arguments are required: --out'),
                          (['cfg.py', '--out', 'x.onnx', '--check-shapes', '12by5'],
                           'expected HEIGHTxWIDTH'),
                          (['cfg.py', '--out', 'x.onnx', '--shape', '0', '64'],
                           '--shape must be positive')):
        assert run_tool_main('export_onnx', argv) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit, match='not found'):
        run_tool_main('export_onnx', ['no_such_config.py', '--out', 'x.onnx'])


@pytest.mark.slow
def test_whole_segmentor_export(tmp_path):
    """UperNet (pyramid pooling included) on a small CvT: the CLI end to end."""
    config = tmp_path / 'upernet_cvt_tiny.py'
    config.write_text(textwrap.dedent(f"""
        _base_ = ['{REPO / 'configs' / 'upernet_cvt_13_ade20k.py'}']
        norm_cfg = dict(type='BN', requires_grad=True)
        model = dict(
            backbone=dict(arch=dict(_delete_=True, **{SMALL_CVT}),
                          init_cfg=dict(checkpoint=None)),
            decode_head=dict(in_channels=[16, 32, 48, 48], channels=16, norm_cfg=norm_cfg),
            auxiliary_head=dict(in_channels=48, channels=8, norm_cfg=norm_cfg))
        """))
    out, report_file = tmp_path / 'upernet.onnx', tmp_path / 'report.json'
    run_tool('export_onnx', config, '--out', out, '--json', report_file)
    report = json.loads(report_file.read_text())
    assert report['ok'] and out.is_file()
    assert "mode='tensor'" in report['exported']
    assert [(c['batch'], c['height'], c['width']) for c in report['checks']] == [
        (2, 512, 512), (1, 333, 517), (3, 97, 131)]
    assert all(max(c['errors']) < 1e-4 for c in report['checks'])
    assert report['checks'][1]['shapes'] == [[1, 150, 83, 129]]  # logits at 1/4 of 333x517
