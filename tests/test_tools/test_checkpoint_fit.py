"""The fit rule on every tool that loads a whole model, ours and the ones packaged inside the
installed mmseg and mmdet (``mmseg/.mim/tools``, ``mmdet/.mim/tools``), run as users run them:
a checkpoint that does not fill the model is refused before any figure is printed, a partial fit
to start training is a warning, and a served pickle that runs code is refused."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from checkpoint_files import save_code_running_pickle
from tool_cli import REPO, run_tool_main

SEG_CFG = str(REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py')
DET_CFG = str(REPO / 'configs' / 'toy' / 'mask_rcnn_cswin_toy.py')


def mim_tool(package: str, name: str) -> Path:
    """A tool packaged inside an installed OpenMMLab package (what `mim train/test` runs)."""
    module = __import__(package)
    path = Path(module.__file__).parent / '.mim' / 'tools' / f'{name}.py'
    assert path.is_file(), f'{package} ships no {name}.py in .mim/tools'
    return path


def toy_model_state(config: str, **changes) -> dict:
    """The state dict of the toy config's model (random init), ``changes`` applied to the config."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(changes)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    return MODELS.build(cfg.model).state_dict()


@pytest.fixture(scope='module')
def seg_files(tmp_path_factory):
    """Checkpoints of the toy segmentor: whole, without its decode head, with 7 classes."""
    root = tmp_path_factory.mktemp('seg_ckpts')
    whole = toy_model_state(SEG_CFG)
    files = {'whole': root / 'whole.pth', 'no_head': root / 'no_head.pth',
             'classes7': root / 'classes7.pth'}
    torch.save({'state_dict': whole, 'meta': {}}, files['whole'])
    torch.save({'state_dict': {k: v for k, v in whole.items() if not k.startswith('decode_head.')},
                'meta': {}}, files['no_head'])
    torch.save({'state_dict': toy_model_state(SEG_CFG, **{'model.decode_head.num_classes': 7}),
                'meta': {}}, files['classes7'])
    return files


def missing_head_count(state: dict) -> int:
    return sum(1 for k in state if k.startswith('decode_head.') and 'num_batches_tracked' not in k)


def test_test_py_refuses_a_model_whose_head_is_not_in_the_file(seg_files, seg_options, tmp_path,
                                                               capsys):
    whole = torch.load(seg_files['whole'], weights_only=True)['state_dict']
    with pytest.raises(SystemExit) as err:
        run_tool_main('test', [SEG_CFG, seg_files['no_head'], '--work-dir', tmp_path,
                               *seg_options()])
    message = str(err.value)
    assert message.startswith('error: ')
    assert f'decode_head: {missing_head_count(whole)} tensors missing' in message
    assert 'cannot be evaluated' in message
    assert 'metrics:' not in capsys.readouterr().out


def test_infer_py_refuses_it_too(seg_files, toy_ade, tmp_path):
    with pytest.raises(SystemExit, match='decode_head: .* tensors missing'):
        run_tool_main('infer', [toy_ade / 'images' / 'validation', SEG_CFG, seg_files['no_head'],
                                '--out-dir', tmp_path])
    assert not list(tmp_path.glob('*.png'))


def test_resume_refuses_a_partial_file_and_load_from_fine_tunes_from_it(seg_files, seg_options,
                                                                         tmp_path):
    with pytest.raises(SystemExit, match='--resume continues a run'):
        run_tool_main('train', [SEG_CFG, '--work-dir', tmp_path / 'r', '--resume',
                                seg_files['classes7'], *seg_options()])
    # another class count is what fine-tuning does on purpose: a warning, and training runs
    assert run_tool_main('train', [SEG_CFG, '--work-dir', tmp_path / 'f', *seg_options(
        f'load_from={seg_files["classes7"]}', 'default_hooks.checkpoint.interval=1')]) == 0
    assert (tmp_path / 'f' / 'iter_1.pth').is_file()


# --- mmseg's and mmdet's own tools, with the config's custom_imports ---------------------------
def run_mim_tool(path: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(path), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_mmseg_tools_train_from_a_url_and_refuse_mismatched_or_unsafe_files(
        seg_files, seg_options, tmp_path, loopback_server, hub_dir, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(hub_dir.parent / 'torch_home'))
    (loopback_server.root / 'whole.pth').write_bytes(seg_files['whole'].read_bytes())
    marker = tmp_path / 'code_ran'
    save_code_running_pickle(loopback_server.root / 'evil.pth', marker)
    train, test = mim_tool('mmseg', 'train'), mim_tool('mmseg', 'test')
    options = seg_options('default_hooks.checkpoint.interval=1')

    res = run_mim_tool(train, SEG_CFG, '--work-dir', tmp_path / 'w', *options,
                   f'load_from={loopback_server.url("whole.pth")}')
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / 'w' / 'iter_1.pth').is_file()
    assert 'loaded' in res.stdout + res.stderr

    res = run_mim_tool(test, SEG_CFG, seg_files['no_head'], '--work-dir', tmp_path / 't', *options)
    assert res.returncode != 0
    assert 'decode_head: ' in res.stderr and 'tensors missing' in res.stderr
    assert not re.search(r'mIoU: \d', res.stdout)  # no figure (the config dump names mIoU)

    res = run_mim_tool(test, SEG_CFG, loopback_server.url('evil.pth'), '--work-dir', tmp_path / 'e',
                   *options)
    assert res.returncode != 0 and 'weights-only' in res.stderr
    assert not marker.exists(), 'the pickle ran its code'


@pytest.mark.slow
def test_mmdet_test_tool_refuses_a_detector_without_its_roi_head(tmp_path, toy_data):
    """mmdet's own tools/test.py (the model is built before any data is read)."""
    state = toy_model_state(DET_CFG)
    path = tmp_path / 'no_roi_head.pth'
    torch.save({'state_dict': {k: v for k, v in state.items() if not k.startswith('roi_head.')},
                'meta': {}}, path)
    data = toy_data('coco', 2, 1)
    root, ann = f'{data}/', f'{data}/annotations/instances_val2017.json'
    res = run_mim_tool(mim_tool('mmdet', 'test'), DET_CFG, path, '--work-dir', tmp_path / 't',
                   '--cfg-options', f'test_dataloader.dataset.data_root={root}',
                   f'test_evaluator.ann_file={ann}')
    assert res.returncode != 0
    assert 'roi_head: ' in res.stderr and 'tensors missing' in res.stderr
    assert not re.search(r'bbox_mAP: \d', res.stdout)
