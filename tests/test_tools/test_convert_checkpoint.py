"""tools/convert_checkpoint.py: the command line, on files of each family and foreign layouts."""
import pytest
import torch

from checkpoint_layouts import official_names
from mmvit_plugin.models.backbones.swin import Swin
from tool_cli import run_tool, run_tool_main

SMALL = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 1, 1, 1))


def run(*args):
    return run_tool('convert_checkpoint', *args, check=False)


def test_swin_classification_release_to_our_layout(tmp_path):
    source = Swin(SMALL)
    official = official_names({k: v for k, v in source.state_dict().items()}, 'swin')
    official['layers.0.blocks.0.attn.relative_position_index'] = torch.zeros(49, 49, dtype=torch.long)
    official['layers.0.blocks.1.attn_mask'] = torch.zeros(4, 49, 49)
    src, dst = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save({'model': official}, src)
    proc = run('swin', src, dst, '--window-size', 12)
    assert proc.returncode == 0, proc.stderr
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert not any(k.endswith(('relative_position_index', 'attn_mask')) for k in converted)
    assert converted['stages.0.blocks.0.attn.relative_position_bias_table'].shape == (23 * 23, 1)
    model = Swin(SMALL, window_size=12)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    assert not missing and not unexpected


def test_reports_bad_sources(tmp_path):
    proc = run('swin', tmp_path / 'missing.pth', tmp_path / 'out.pth')
    assert proc.returncode == 1 and 'not found' in proc.stderr
    torch.save({'model': {'stage0.patch_embed.proj.weight': torch.zeros(64, 3, 7, 7)}},
               tmp_path / 'cvt.pth')
    proc = run('swin', tmp_path / 'cvt.pth', tmp_path / 'out.pth', '--arch', 'tiny')
    assert proc.returncode == 1 and 'does not fit' in proc.stderr
    assert not (tmp_path / 'out.pth').exists()


@pytest.mark.parametrize('family,cls_name,arch', [('cvt', 'CvT', '13'), ('mpvit', 'MPViT', 'tiny')])
def test_other_families_round_trip(tmp_path, family, cls_name, arch):
    import mmvit_plugin.models.backbones as backbones
    model = getattr(backbones, cls_name)(arch=arch)
    torch.save(model.state_dict(), tmp_path / 'src.pth')
    proc = run(family, tmp_path / 'src.pth', tmp_path / 'dst.pth', '--arch', arch)
    assert proc.returncode == 0, proc.stderr
    assert '0 missing' in proc.stdout
    converted = torch.load(tmp_path / 'dst.pth', weights_only=True)['state_dict']
    assert converted.keys() == model.state_dict().keys()


def test_foreign_layout_is_detected_and_reported(tmp_path, capsys):
    """A timm hub file (safetensors): the tool names the layout, keeps it in meta, and an arch it
    does not fit is refused naming the layout. (In-process: what the script runs.)"""
    from safetensors.torch import save_file
    from timm.models.swin_transformer import SwinTransformer

    timm_model = SwinTransformer(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 1, 1, 1),
                                 window_size=7)
    src = tmp_path / 'model.safetensors'
    save_file(timm_model.state_dict(), str(src))
    assert run_tool_main('convert_checkpoint',
                         ['swin', src, tmp_path / 'ours.pth', '--arch', repr(SMALL)]) == 0
    out = capsys.readouterr().out
    assert 'layout: timm Swin' in out and '8 missing' in out  # the output norms norm0..3
    saved = torch.load(tmp_path / 'ours.pth', weights_only=True)
    assert saved['meta']['layout'] == 'timm Swin'
    assert 'stages.0.downsample.reduction.weight' in saved['state_dict']
    assert run_tool_main('convert_checkpoint',
                         ['swin', src, tmp_path / 'out.pth', '--arch', 'tiny']) == 1
    assert '(timm Swin layout) does not fit' in capsys.readouterr().err
