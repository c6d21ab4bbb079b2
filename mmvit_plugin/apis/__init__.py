"""What the tools do, as functions: loading a config (``--data-root``, ``--cfg-options``,
checkpoint URIs), the data check, building the runner or the model, training, evaluating,
predicting, converting checkpoints and writing toy datasets.

Not imported by ``mmvit_plugin`` itself; mmseg and mmdet are imported inside the functions that
need them.
"""
from .config import check_scope, checkpoint_uri, load_config, set_data_root
from .data_check import check_data, missing_data
from .evaluation import evaluate
from .inference import infer
from .runner import build_model, build_runner, check_channels
from .training import train

__all__ = ['check_scope', 'checkpoint_uri', 'load_config', 'set_data_root', 'check_data',
           'missing_data', 'evaluate', 'infer', 'build_model', 'build_runner', 'check_channels',
           'train']
