"""Evaluating a checkpoint from a config, as tools/test.py runs it (mmseg or mmdet config alike):
the options mean what they mean in the config's toolkit (see :func:`evaluate`)."""
import json
import os
import os.path as osp
from typing import Any, Dict, Optional

from .config import checkpoint_uri, load_config
from .data_check import check_data
from .runner import build_runner, require_cuda_for_amp

#: What ``--out`` writes, per toolkit (the config's default_scope), as in its own test.py.
OUT_HELP = {'mmseg': 'a directory for the predicted label maps (PNG)',
            'mmdet': 'a .pkl file of the predictions'}


def enable_visualization(cfg: Any, show_dir: Optional[str], show: bool = False,
                         interval: int = 1, wait_time: float = 2) -> None:
    """Turn on the config's visualization hook (mmseg SegVisualizationHook / mmdet DetVisualizationHook)."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise SystemExit('error: --show/--show-dir need a `visualization` hook in default_hooks '
                         '(the mmseg/mmdet default_runtime bases have one)')
    hook = hooks['visualization']
    hook['draw'] = True
    hook['interval'] = interval
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if show_dir:
        show_dir = osp.abspath(show_dir)
        if cfg.get('default_scope') == 'mmdet':
            hook['test_out_dir'] = show_dir  # mmdet writes one file per image there
        else:
            cfg.visualizer['save_dir'] = show_dir  # mmseg: the visualizer's local backend
            cfg.visualizer['vis_backends'] = [dict(type='LocalVisBackend')]


def enable_tta(cfg: Any, config: str) -> None:
    """Test through the config's ``tta_model`` on ``tta_pipeline`` (as mmseg's and mmdet's test.py,
    but a config without them is an error, not a silent default)."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
    if missing:
        why = (' (mmdet 3.3\'s DetTTAModel merges boxes only: instance segmentation has no TTA; '
               'the RetinaNet configs have one)' if cfg.get('default_scope') == 'mmdet' else '')
        raise SystemExit(f'error: --tta: {config} defines no {" / ".join(missing)}{why}')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = dict(cfg.tta_model, module=cfg.model)


def save_predictions(cfg: Any, out: str) -> None:
    """``--out`` for mmseg configs: IoUMetric writes each predicted label map into ``out``."""
    evaluator = cfg.test_evaluator
    if not isinstance(evaluator, dict) or evaluator.get('type') != 'IoUMetric':
        raise SystemExit('error: --out for an mmseg config needs test_evaluator = '
                         f'dict(type=\'IoUMetric\', ...); this config has {evaluator!r}')
    evaluator['output_dir'] = osp.abspath(out)


def dump_detections(runner: Any, out: str) -> None:
    """``--out`` for mmdet configs: mmdet's DumpDetResults pickles the predictions to ``out``."""
    from mmdet.evaluation import DumpDetResults
    runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out))


def plain(value: Any) -> Any:
    """numpy scalars/arrays (mmseg's IoUMetric returns them) as Python numbers/lists."""
    if hasattr(value, 'tolist'):
        return value.tolist()
    return value


def evaluate(config: str, checkpoint: str, work_dir: Optional[str] = None,
             out: Optional[str] = None, data_root: Optional[str] = None,
             metrics_out: Optional[str] = None, tta: bool = False,
             show_dir: Optional[str] = None, show_interval: int = 1, show: bool = False,
             wait_time: float = 2, amp: bool = False, cfg_options: Optional[dict] = None,
             launcher: str = 'none') -> Dict[str, Any]:
    """The metrics of the config's test evaluator on ``checkpoint`` (a path or URI, loaded
    weights-only; a file that does not fill the model is an error, and no figure is printed).

    ``out``: mmseg configs: a directory for the predicted label maps (one PNG per image, as
    mmseg's test.py); mmdet configs: a ``.pkl`` file of the predictions (mmdet's
    ``DumpDetResults``). ``tta``: the config's ``tta_model`` and ``tta_pipeline``. ``metrics_out``:
    also write the metrics as JSON. ``data_root``: the dataset folder for every dataloader and
    evaluator; a test dataset that is not there is one error, before the model is built.
    """
    if amp:
        require_cuda_for_amp()
    cfg = load_config(config, cfg_options, launcher, work_dir, data_root)
    scope = cfg.get('default_scope')
    if out and scope not in OUT_HELP:
        raise SystemExit(f'error: --out: default_scope {scope!r}; only mmseg and mmdet configs')
    if out and scope == 'mmdet' and not out.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'error: --out {out}: for an mmdet config --out is {OUT_HELP[scope]} '
                         '(name ending in .pkl); --metrics-out FILE writes the metrics as JSON')
    cfg.load_from = checkpoint_uri(checkpoint, 'checkpoint')
    cfg.resume = False
    if amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    if show or show_dir:
        enable_visualization(cfg, show_dir, show, show_interval, wait_time)
    if tta:
        enable_tta(cfg, config)
    if out and scope == 'mmseg':
        save_predictions(cfg, out)
    check_data(cfg, 'test')

    runner = build_runner(cfg)
    if out and scope == 'mmdet':
        dump_detections(runner, out)
    from mmvit_plugin.checkpoint import CheckpointError
    try:
        metrics = {k: plain(v) for k, v in runner.test().items()}
    except CheckpointError as err:  # the weights did not fill the model: no figure is printed
        raise SystemExit(f'error: {err}') from None
    if runner.rank == 0:
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}
        print('metrics: ' + json.dumps(shown, default=str), flush=True)
        if metrics_out:
            os.makedirs(osp.dirname(osp.abspath(metrics_out)), exist_ok=True)
            with open(metrics_out, 'w') as f:
                json.dump(metrics, f, indent=2, default=str)
        if out:
            print(f'predictions ({OUT_HELP[scope]}) in {osp.abspath(out)}', flush=True)
        if show_dir:
            print(f'pictures (ground truth | prediction) in {osp.abspath(show_dir)}', flush=True)
    return metrics
