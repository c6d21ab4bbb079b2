"""tools/train.py, tools/test.py and tools/infer.py end to end (subprocesses) on tiny toy data:
a few iterations of the toy UperNet and Mask R-CNN configs, then a metric and a checkpoint; the
options as mmseg/mmdet users type them (--out, --tta, --auto-scale-lr, checkpoints by URL)."""
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from tool_cli import REPO, run_tool, tool_path

SEG_CFG = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'
DET_CFG = REPO / 'configs' / 'toy' / 'mask_rcnn_cswin_toy.py'


@pytest.fixture(scope='module')
def data(toy_data):
    """The toy ADE20K (8 training, 3 validation images) and COCO (6, 3; RLE masks) sets."""
    return dict(ade=toy_data('ade', 8, 3), coco=toy_data('coco', 6, 3, mask_format='rle'))


def seg_options(data, iters):
    root = data['ade']
    return ['--cfg-options', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', f'train_cfg.max_iters={iters}',
            f'train_cfg.val_interval={iters}', 'default_hooks.checkpoint.interval=2',
            'default_hooks.checkpoint.max_keep_ckpts=3', 'default_hooks.logger.interval=1']


def det_options(data, epochs=1):
    root = f'{data["coco"]}/'
    ann = f'{root}annotations/instances_val2017.json'
    return ['--cfg-options', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
            'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', f'train_cfg.max_epochs={epochs}',
            f'train_cfg.val_interval={epochs}', 'default_hooks.checkpoint.interval=1',
            'default_hooks.logger.interval=1']


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_segmentation_train_resume_test_infer(data, tmp_path, loopback_server, hub_dir):
    work = tmp_path / 'seg'
    res = run_tool('train', SEG_CFG, '--work-dir', work, *seg_options(data, 4))
    assert (work / 'iter_2.pth').is_file() and (work / 'iter_4.pth').is_file()
    assert 'mIoU' in res.stdout + res.stderr  # validation ran at the end of training

    # --resume without a path: the latest checkpoint of the work dir (iter 4), then on to 6
    res = run_tool('train', SEG_CFG, '--work-dir', work, '--resume', *seg_options(data, 6))
    log = res.stdout + res.stderr
    assert 'resumed' in log.lower() and 'iter_4.pth' in log
    assert (work / 'iter_6.pth').is_file()

    ckpt = work / 'iter_6.pth'
    metrics_file, preds = tmp_path / 'seg_metrics.json', tmp_path / 'seg_preds'
    res = run_tool('test', SEG_CFG, ckpt, '--work-dir', tmp_path / 'seg_test',
              '--metrics-out', metrics_file, '--out', preds, '--show-dir', tmp_path / 'seg_vis',
              *seg_options(data, 6))
    metrics = json.loads(metrics_file.read_text())
    assert 0 <= metrics['mIoU'] <= 100 and 'mIoU' in res.stdout
    assert len(list((tmp_path / 'seg_vis').rglob('*.png'))) == 3
    # --out as in mmseg: one label map per image, ADE20K label values (0 = unlabelled, 1..5)
    maps = sorted(preds.glob('*.png'))
    assert [p.stem for p in maps] == sorted(p.stem for p in (data['ade'] / 'images' / 'validation').iterdir())
    labels = np.unique(np.concatenate([np.asarray(Image.open(p)).ravel() for p in maps]))
    assert labels.min() >= 1 and labels.max() <= 5

    # the checkpoint by URL (loopback; downloads go to hub_dir): the same metrics as from the file
    shutil.copy(ckpt, loopback_server.root / 'seg.pth')
    url_metrics = tmp_path / 'url_metrics.json'
    run_tool('test', SEG_CFG, loopback_server.url('seg.pth'), '--work-dir',
        tmp_path / 'url_test', '--metrics-out', url_metrics, *seg_options(data, 6))
    assert json.loads(url_metrics.read_text()) == metrics

    # --tta: the multi-scale (0.5..1.75 of the test scale) + flip protocol through SegTTAModel
    tta_file = tmp_path / 'tta_metrics.json'
    res = run_tool('test', SEG_CFG, ckpt, '--tta', '--work-dir', tmp_path / 'tta_test',
              '--metrics-out', tmp_path / 'tta_metrics.json', *seg_options(data, 6))
    tta = json.loads(tta_file.read_text())
    assert 'SegTTAModel' in res.stdout + res.stderr
    assert 0 <= tta['mIoU'] <= 100 and (tta['mIoU'], tta['aAcc']) != (metrics['mIoU'], metrics['aAcc'])

    res = run_tool('infer', data['ade'] / 'images' / 'validation', SEG_CFG,
              ckpt, '--out-dir', tmp_path / 'seg_infer', '--limit', '2')
    assert len(list((tmp_path / 'seg_infer').glob('*.png'))) == 2


def final_weights(path):
    from mmvit_plugin.checkpoint import read_checkpoint  # weights-only, mmengine's types allowed
    return read_checkpoint(path)['state_dict']


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_sigkill_then_resume_ends_with_the_uninterrupted_weights(data, tmp_path):
    # drop path and the heads' dropout draw from torch's generator, the pipeline from numpy's:
    # both must continue where the killed run stopped.
    opts = seg_options(data, 6) + ['randomness.deterministic=True']
    run_tool('train', SEG_CFG, '--work-dir', tmp_path / 'straight', *opts)

    work = tmp_path / 'killed'
    proc = subprocess.Popen([sys.executable, tool_path('train'), SEG_CFG, '--work-dir', work, *opts],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (work / 'iter_2.pth').exists() and proc.poll() is None:
            assert time.monotonic() < deadline, 'no checkpoint after 300 s'
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        returncode = proc.wait()
    assert returncode == -signal.SIGKILL, 'the run ended before it could be killed'
    assert not (work / 'iter_6.pth').exists()
    assert not list(work.glob('.*.tmp')), 'a half-written checkpoint was left behind'

    res = run_tool('train', SEG_CFG, '--work-dir', work, '--resume', *opts)
    assert 'resumed' in (res.stdout + res.stderr).lower()
    straight, resumed = final_weights(tmp_path / 'straight' / 'iter_6.pth'), final_weights(work / 'iter_6.pth')
    assert straight.keys() == resumed.keys()
    differing = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert not differing, f'{len(differing)} tensors differ, e.g. {differing[:3]}'


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_two_process_cpu_training_writes_from_rank_0_only(data, tmp_path):
    work = tmp_path / 'dist'
    env = dict(PYTHON=sys.executable, PORT=str(29500 + os.getpid() % 1000))
    res = run_tool('dist_train.sh', SEG_CFG, '2', '--work-dir', work, *seg_options(data, 4),
                   env=env, check=False)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-6000:]
    assert 'gloo' in log  # chosen because there is no GPU
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth', 'iter_4.pth']
    runs = [p for p in work.iterdir() if p.is_dir()]
    assert len(runs) == 1, 'one log directory, from rank 0'
    scalars = [json.loads(line) for line in (runs[0] / 'vis_data' / 'scalars.json').read_text().splitlines()]
    assert [s['iter'] for s in scalars if 'loss' in s] == [1, 2, 3, 4]
    assert sum('mIoU' in s for s in scalars) == 1
    assert 'Distributed training: True' in log and 'GPU number: 2' in log  # mmengine's world size

    out = tmp_path / 'metrics.json'
    res = run_tool('dist_test.sh', SEG_CFG, work / 'iter_4.pth', '2', '--work-dir',
                   tmp_path / 'dist_test', '--metrics-out', out, *seg_options(data, 4), env=env,
                   check=False)
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    assert res.stdout.count('metrics: ') == 1  # printed by rank 0 only
    assert 0 <= json.loads(out.read_text())['mIoU'] <= 100


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_detection_train_test_infer(data, tmp_path):
    work = tmp_path / 'det'
    res = run_tool('train', DET_CFG, '--work-dir', work, '--auto-scale-lr', *det_options(data))
    # the recipe's lr is for 16 images; this run has 1 process x 2 images
    assert 'Scaling the original LR by 0.125' in res.stdout + res.stderr
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()

    metrics_file, preds = tmp_path / 'det_metrics.json', tmp_path / 'det_preds.pkl'
    res = run_tool('test', DET_CFG, ckpt, '--work-dir', tmp_path / 'det_test',
              '--metrics-out', metrics_file, '--out', preds, '--show-dir', tmp_path / 'det_vis',
              *det_options(data))
    metrics = json.loads(metrics_file.read_text())
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert -1 <= metrics[key] <= 1, key  # -1: no detections at all after 3 iterations
    assert 'bbox_mAP' in res.stdout
    assert len(list((tmp_path / 'det_vis').rglob('*.jpg')) +
               list((tmp_path / 'det_vis').rglob('*.png'))) == 3
    # --out as in mmdet: the predictions of every test image, pickled (DumpDetResults)
    with open(preds, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 3 and all('pred_instances' in r and 'img_id' in r for r in results)

    run_tool('infer', data['coco'] / 'val2017' / '000001000001.jpg', DET_CFG, ckpt,
        '--out-dir', tmp_path / 'det_infer', '--score-thr', '0')
    assert (tmp_path / 'det_infer' / '000001000001.png').is_file()


@pytest.mark.parametrize('args, message', [
    (['--out', 'metrics.json'], 'for an mmdet config --out is a .pkl file of the predictions'),
    (['--tta'], "defines no tta_model / tta_pipeline (mmdet 3.3's DetTTAModel merges boxes only"),
])
def test_detection_test_options_that_do_not_apply(args, message, tmp_path):
    ckpt = tmp_path / 'any.pth'
    ckpt.write_bytes(b'not read: the options are checked first')
    res = run_tool('test', DET_CFG, ckpt, *args, check=False)
    assert res.returncode != 0 and 'Traceback' not in res.stderr
    assert message in res.stderr


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_amp_needs_gpu(tool, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip('a CUDA GPU is present')
    args = [SEG_CFG] if tool == 'train' else [SEG_CFG, tmp_path / 'none.pth']
    res = run_tool(tool, *args, '--amp', check=False)
    assert res.returncode != 0
    assert 'needs a CUDA GPU' in res.stderr and 'Traceback' not in res.stderr


def test_channel_mismatch_is_a_clear_error(data, tmp_path):
    res = run_tool('train', SEG_CFG, '--work-dir', tmp_path, *seg_options(data, 1),
              'model.decode_head.in_channels=[96,192,384,768]', check=False)
    assert res.returncode != 0 and 'Traceback' not in res.stderr
    assert ('config mismatch: model.decode_head.in_channels=[96, 192, 384, 768]' in res.stderr
            and 'set in_channels=[32, 64, 128, 256]' in res.stderr)


@pytest.mark.parametrize('tool', ['train', 'test', 'infer'])
def test_missing_local_checkpoint(tool, tmp_path):
    missing = tmp_path / 'missing.pth'
    args = {'train': [SEG_CFG, '--work-dir', tmp_path, '--resume', missing],
            'test': [SEG_CFG, missing], 'infer': [tmp_path, SEG_CFG, missing]}[tool]
    res = run_tool(tool, *args, check=False)
    assert res.returncode != 0 and 'Traceback' not in res.stderr
    assert f'{missing}: no such checkpoint file' in res.stderr
