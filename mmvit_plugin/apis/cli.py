"""What the tools' command lines share: argument types and help texts (argparse only; the tools
in tools/ are argument parsing and one call into this package)."""
import argparse
import os
from typing import Any, Dict, List, Optional, Tuple

DATA_ROOT_HELP = ('the dataset folder, for every dataloader (train, val, test; wrapped datasets '
                  'too) and every evaluator file under the config\'s own data root (COCO '
                  'annotation files); e.g. /data/ade/ADEChallengeData2016 or /data/coco')
LAUNCHERS = ['none', 'pytorch', 'slurm', 'mpi']


def parse_size(text: str) -> Tuple[int, int]:
    """``'HxW'`` as ``(H, W)`` (an argparse type); an error naming the bad value otherwise."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected HEIGHTxWIDTH, e.g. 480x640, got {text!r}') from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f'sizes must be positive, got {text!r}')
    return height, width


def dict_action() -> Any:
    """mmengine's ``DictAction`` (``--cfg-options key=value ...``), imported when needed."""
    from mmengine.config import DictAction
    return DictAction


def parse_cfg_options(options: Optional[List[str]]) -> Dict[str, Any]:
    """``KEY=VALUE`` strings as the tools' ``--cfg-options`` parse them (mmengine's DictAction)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=dict_action(), default={})
    return parser.parse_args(['--cfg-options', *options] if options else []).cfg_options


def add_launcher_arguments(parser: argparse.ArgumentParser, help: str = 'job launcher') -> None:
    """``--launcher`` and the ``--local_rank`` that torch.distributed.launch passes."""
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help=help)
    # torchrun sets LOCAL_RANK; torch.distributed.launch passes --local_rank / --local-rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def set_local_rank(args: argparse.Namespace) -> argparse.Namespace:
    """``LOCAL_RANK`` from ``--local_rank`` unless the launcher set it (mmengine reads it)."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args
