"""mmvit_plugin.benchmark.zoo_benchmark's pieces, without running tests: the rows measured
against the published figures, the cause of a failed run, the launchers' commands. End to end:
tests/test_tools/test_benchmark_zoo.py."""
from pathlib import Path

import pytest

from mmvit_plugin.benchmark.zoo import TOOLS, Release, ZooModel, load_zoo
from mmvit_plugin.benchmark.zoo_benchmark import (Launcher, error_message, evaluation_command,
                                                  metric_rows)


def zoo_model(releases):
    return ZooModel(name='m', config=Path('configs/m_coco_1x.py'), collection='Mask R-CNN',
                    backbone='X', releases=releases)


TORCHRUN_FAILURE = """\
[rank0]: Traceback (most recent call last):
[rank0]:   File "tools/test.py", line 178, in <module>
[rank0]:     raise CheckpointError(
[rank0]: mmvit_plugin.checkpoint.CheckpointError: 'x.pth' does not fit: decode_head: 24 tensors missing
E1207 04:37:51.788000 9548 api.py:1002] failed (exitcode: 1) local_rank: 0 (pid: 9557)
Traceback (most recent call last):
  File "torch/distributed/run.py", line 138, in __call__
    raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError: 
============================================================
tools/test.py FAILED
------------------------------------------------------------
  rank      : 0 (local_rank: 0)
  error_file: <N/A>
============================================================
"""


@pytest.mark.parametrize('log, cause', [
    ('loading\nerror: config mismatch: set in_channels\nTraceback\nValueError: later\n',
     'error: config mismatch: set in_channels'),
    (TORCHRUN_FAILURE, "mmvit_plugin.checkpoint.CheckpointError: 'x.pth' does not fit: "
                       'decode_head: 24 tensors missing'),
    ('just\nthe last line\n\n', 'the last line'),
], ids=['our-error-line', 'torchrun-worker-exception', 'last-line'])
def test_error_message_names_the_cause(tmp_path, log, cause):
    """Under torchrun the cause is the worker's exception (its lines prefixed with [rankN]:), not
    torchrun's ChildFailedError after it."""
    log_file = tmp_path / 'test.log'
    log_file.write_text(log)
    assert error_message(log_file) == cause


def test_detection_metrics_in_points_against_the_matching_release():
    mmdet = Release(metrics={'box AP': 42.7, 'mask AP': 39.3}, source='mmdet',
                       checkpoint='https://host/mmdet_1x.pth')
    official = Release(metrics={'box AP': 43.7, 'mask AP': 39.8}, source='official',
                          checkpoint='https://host/official_1x.pth')
    model = zoo_model([mmdet, official])
    metrics = {'coco/bbox_mAP': 0.431, 'coco/segm_mAP': 0.395, 'coco/bbox_mAP_50': 0.6}
    own = metric_rows(model, metrics, None, tta=False)  # a checkpoint trained here
    assert [(r['metric'], r['measured'], r['published'], r['delta']) for r in own] == [
        ('box AP', 43.1, 42.7, 0.4), ('mask AP', 39.5, 39.3, 0.2)]
    released = metric_rows(model, metrics, official, tta=False)
    assert [(r['published'], r['source']) for r in released] == [(43.7, 'official'),
                                                                 (39.8, 'official')]
    # with --tta the box AP has no published counterpart
    assert [(r['metric'], r['published']) for r in metric_rows(model, metrics, None, True)] \
        == [('box AP(TTA)', None)]


def test_segmentation_tta_compares_with_ms_flip():
    model = zoo_model([Release(metrics={'mIoU': 44.5, 'mIoU(ms+flip)': 45.8}, source='s')])
    rows = metric_rows(model, {'mIoU': 45.9, 'aAcc': 80.0}, None, tta=True)
    assert [(r['metric'], r['published'], r['delta']) for r in rows] == [
        ('mIoU(ms+flip)', 45.8, 0.1)]


def test_launcher_commands(tmp_path):
    model = load_zoo().models[0]
    cmd = evaluation_command(model, tmp_path / 'c.pth', tmp_path / 'run', tmp_path, tta=True,
                             cfg_options=['a=1'], launcher=Launcher('pytorch', gpus=4))
    assert cmd[:6] == ['bash', str(TOOLS / 'dist_test.sh'), str(model.config),
                       str(tmp_path / 'c.pth'), '4', '--data-root']
    assert cmd[-3:] == ['--tta', '--cfg-options', 'a=1']
    cmd = evaluation_command(model, tmp_path / 'c.pth', tmp_path / 'run', tmp_path,
                             launcher=Launcher('slurm', gpus=16, partition='gpu'))
    assert cmd[:3] == ['srun', '-p', 'gpu'] and '--ntasks=16' in cmd
    assert '--ntasks-per-node=8' in cmd and cmd[-2:] == ['--launcher', 'slurm']
    assert str(TOOLS / 'test.py') in cmd
    cmd = evaluation_command(model, tmp_path / 'c.pth', tmp_path / 'run', tmp_path)
    assert cmd[1:3] == [str(TOOLS / 'test.py'), str(model.config)]


def test_panoptic_metrics_pq_in_points_beside_box_and_mask_ap():
    """Mask2Former's panoptic configs evaluate CocoPanopticMetric (PQ in percent) and CocoMetric
    (AP as fractions) on the same predictions: all three compared with the release's figures."""
    model = zoo_model([Release(metrics={'PQ': 53.4, 'box AP': 46.3, 'mask AP': 43.4}, source='s')])
    metrics = {'coco_panoptic/PQ': 53.01, 'coco_panoptic/SQ': 83.0, 'coco/bbox_mAP': 0.461,
               'coco/segm_mAP': 0.432}
    rows = metric_rows(model, metrics, None, tta=False)
    assert sorted((r['metric'], r['measured'], r['delta']) for r in rows) == [
        ('PQ', 53.01, -0.39), ('box AP', 46.1, -0.2), ('mask AP', 43.2, -0.2)]
