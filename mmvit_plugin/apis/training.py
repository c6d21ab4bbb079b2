"""Training from a config, as tools/train.py runs it: mmengine's Runner with what this package
adds to mmseg's / mmdet's train.py (see :func:`train`)."""
from typing import Optional

from mmvit_plugin.engine.compile import compile_kwargs

from .config import (checkpoint_uri, enable_amp, enable_auto_scale_lr, ensure_hooks,
                     load_config)
from .data_check import check_data
from .runner import build_runner, require_cuda_for_amp


def training_config(config: str, work_dir: Optional[str] = None, resume: Optional[str] = None,
                    amp: bool = False, auto_scale_lr: bool = False,
                    data_root: Optional[str] = None, cfg_options: Optional[dict] = None,
                    launcher: str = 'none'):
    """The config of a training run: ``--data-root``, ``--cfg-options``, ``--auto-scale-lr``,
    ``--amp``, the hooks a resumable run needs, ``compile`` with the inductor options under which
    the backbones train with changing sizes (:func:`~mmvit_plugin.engine.compile.compile_kwargs`),
    and ``--resume`` (``'auto'``: the latest checkpoint of the work dir; else a path or URI)."""
    cfg = load_config(config, cfg_options, launcher, work_dir, data_root)
    if auto_scale_lr:
        enable_auto_scale_lr(cfg)
    if amp:
        enable_amp(cfg)
    ensure_hooks(cfg)
    if cfg.get('compile'):
        cfg.compile = compile_kwargs(cfg.compile)
    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        cfg.resume = True
        cfg.load_from = checkpoint_uri(resume, '--resume')
    return cfg


def train(config: str, work_dir: Optional[str] = None, resume: Optional[str] = None,
          amp: bool = False, auto_scale_lr: bool = False, data_root: Optional[str] = None,
          cfg_options: Optional[dict] = None, launcher: str = 'none') -> int:
    """Train as mmseg's / mmdet's train.py, and: a neck or head whose in_channels disagree with
    the backbone is an error naming the config entry (before any data is read); RandomStateHook
    and PlainParamGroupsHook are added when a config lacks them, so ``resume`` continues with the
    interrupted run's random state and ``compile=True`` traces the optimizer step; ``amp`` on a
    machine without CUDA is an error; distributed runs without a GPU go over gloo; ``data_root``
    moves the dataset of every dataloader and the annotation files of every evaluator at once; a
    dataset that is not there is one error listing the missing paths (before anything is built).
    """
    if amp:
        require_cuda_for_amp()
    cfg = training_config(config, work_dir, resume, amp, auto_scale_lr, data_root, cfg_options,
                          launcher)
    check_data(cfg, 'train')
    runner = build_runner(cfg)
    from mmvit_plugin.checkpoint import CheckpointError
    try:
        runner.train()
    except CheckpointError as err:  # --resume / load_from / a backbone's weights did not fit
        raise SystemExit(f'error: {err}') from None
    return 0
