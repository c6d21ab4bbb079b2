"""Every path the tools load checkpoints through refuses a loopback-served pickle that runs code,
and the code never runs: train.py's --resume, load_from and the backbone's init_cfg, test.py's
and infer.py's CKPT, convert_checkpoint.py's SRC. The tools run in this process (fast)."""
import pytest
import torch

from checkpoint_files import save_code_running_pickle
from mmvit_plugin.checkpoint import CheckpointError
from tool_cli import REPO, run_tool_main

SEG_CFG = str(REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py')


@pytest.fixture
def evil_url(tmp_path, loopback_server, hub_dir):
    marker = tmp_path / 'code_ran'
    save_code_running_pickle(loopback_server.root / 'evil.pth', marker)
    yield loopback_server.url('evil.pth')
    assert not marker.exists(), 'the pickle ran its code'


def assert_refused(tool, argv):
    with pytest.raises((CheckpointError, SystemExit)) as err:
        run_tool_main(tool, argv)
    assert 'weights-only' in str(err.value), err.value


def test_train_resume_url(evil_url, seg_options, tmp_path):
    assert_refused('train', [SEG_CFG, '--work-dir', tmp_path / 'w', '--resume', evil_url,
                             *seg_options()])


def test_train_load_from_url(evil_url, seg_options, tmp_path):
    assert_refused('train', [SEG_CFG, '--work-dir', tmp_path / 'w',
                             *seg_options(f'load_from={evil_url}')])


def test_train_backbone_init_cfg_url(evil_url, seg_options, tmp_path):
    option = f'model.backbone.init_cfg.checkpoint={evil_url}'
    assert_refused('train', [SEG_CFG, '--work-dir', tmp_path / 'w', *seg_options(option)])


def test_test_checkpoint_url(evil_url, seg_options, tmp_path):
    assert_refused('test', [SEG_CFG, evil_url, '--work-dir', tmp_path / 'w', *seg_options()])


def test_infer_checkpoint_url(evil_url, toy_ade, tmp_path):
    image = next((toy_ade / 'images' / 'validation').iterdir())
    assert_refused('infer', [image, SEG_CFG, evil_url, '--out-dir', tmp_path / 'vis', '--device',
                             'cpu'])


def test_convert_checkpoint_url(evil_url, tmp_path, capsys):
    out = tmp_path / 'converted.pth'
    code = run_tool_main('convert_checkpoint', ['cswin', evil_url, out])
    assert code != 0 and not out.exists()
    assert 'weights-only' in capsys.readouterr().err


def test_a_safe_url_loads_on_the_same_path(tmp_path, loopback_server, hub_dir):
    """The refusals above are not a broken loader: a plain checkpoint at a URL converts."""
    from mmvit_plugin.models import CSWin
    model = CSWin(arch=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 4)))
    torch.save({'state_dict': model.state_dict()}, loopback_server.root / 'good.pth')
    out = tmp_path / 'converted.pth'
    assert run_tool_main('convert_checkpoint', ['cswin', loopback_server.url('good.pth'), out]) == 0
    assert torch.load(out, weights_only=True)['state_dict'].keys() == model.state_dict().keys()
