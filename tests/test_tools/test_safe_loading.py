"""Every path the tools load checkpoints through refuses a loopback-served pickle that runs code,
and the code never runs: train.py's --resume, load_from and the backbone's init_cfg, test.py's
and infer.py's CKPT, convert_checkpoint.py's SRC. The tools run in this process (fast)."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from checkpoint_files import save_code_running_pickle
from mmvit_plugin.checkpoint import CheckpointError

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
SEG_CFG = str(REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py')


def tool(name):
    sys.path.insert(0, str(TOOLS))
    try:
        spec = importlib.util.spec_from_file_location(f'_tool_{name}', TOOLS / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(TOOLS))


@pytest.fixture(scope='module')
def toy_ade(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_ade')
    tool('make_toy_data').main(['--kind', 'ade', '--out', str(root), '--train', '2', '--val', '1'])
    return root


@pytest.fixture
def evil_url(tmp_path, loopback_server, hub_dir):
    marker = tmp_path / 'code_ran'
    save_code_running_pickle(loopback_server.root / 'evil.pth', marker)
    yield loopback_server.url('evil.pth')
    assert not marker.exists(), 'the pickle ran its code'


def seg_options(root, *extra):
    return ['--cfg-options', *(f'{loader}.dataset.data_root={root}'
                               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')),
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'train_cfg.max_iters=1', *extra]


def assert_refused(call):
    with pytest.raises((CheckpointError, SystemExit)) as err:
        call()
    assert 'weights-only' in str(err.value), err.value


def test_train_resume_url(evil_url, toy_ade, tmp_path):
    assert_refused(lambda: tool('train').main(
        [SEG_CFG, '--work-dir', str(tmp_path / 'w'), '--resume', evil_url, *seg_options(toy_ade)]))


def test_train_load_from_url(evil_url, toy_ade, tmp_path):
    assert_refused(lambda: tool('train').main(
        [SEG_CFG, '--work-dir', str(tmp_path / 'w'), *seg_options(toy_ade, f'load_from={evil_url}')]))


def test_train_backbone_init_cfg_url(evil_url, toy_ade, tmp_path):
    option = f'model.backbone.init_cfg.checkpoint={evil_url}'
    assert_refused(lambda: tool('train').main(
        [SEG_CFG, '--work-dir', str(tmp_path / 'w'), *seg_options(toy_ade, option)]))


def test_test_checkpoint_url(evil_url, toy_ade, tmp_path):
    assert_refused(lambda: tool('test').main(
        [SEG_CFG, evil_url, '--work-dir', str(tmp_path / 'w'), *seg_options(toy_ade)]))


def test_infer_checkpoint_url(evil_url, toy_ade, tmp_path):
    image = next((toy_ade / 'images' / 'validation').iterdir())
    assert_refused(lambda: tool('infer').main(
        [str(image), SEG_CFG, evil_url, '--out-dir', str(tmp_path / 'vis'), '--device', 'cpu']))


def test_convert_checkpoint_url(evil_url, tmp_path, capsys):
    out = tmp_path / 'converted.pth'
    code = tool('convert_checkpoint').main(['cswin', evil_url, str(out)])
    assert code != 0 and not out.exists()
    assert 'weights-only' in capsys.readouterr().err


def test_a_safe_url_loads_on_the_same_path(tmp_path, loopback_server, hub_dir):
    """The refusals above are not a broken loader: a plain checkpoint at a URL converts."""
    from mmvit_plugin.models import CSWin
    model = CSWin(arch=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 4)))
    torch.save({'state_dict': model.state_dict()}, loopback_server.root / 'good.pth')
    out = tmp_path / 'converted.pth'
    assert tool('convert_checkpoint').main(['cswin', loopback_server.url('good.pth'), str(out)]) == 0
    assert torch.load(out, weights_only=True)['state_dict'].keys() == model.state_dict().keys()
