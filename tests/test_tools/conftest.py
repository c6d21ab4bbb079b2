"""Fixtures of the command-line tests: the toy UperNet config's options on a small toy ADE20K
set."""
from typing import Callable, List

import pytest


@pytest.fixture(scope='module')
def toy_ade(toy_data):
    """A toy ADE20K set: 2 training images, 1 validation image."""
    return toy_data('ade', 2, 1)


@pytest.fixture
def seg_options(toy_ade) -> Callable[..., List[str]]:
    """``seg_options(*extra)``: ``--cfg-options`` running the toy UperNet config
    (configs/toy/upernet_cswin_toy.py) one iteration on :func:`toy_ade` in this process (no
    workers), then ``extra``."""
    def options(*extra: str) -> List[str]:
        return ['--cfg-options', *(f'{loader}.dataset.data_root={toy_ade}' for loader in
                                   ('train_dataloader', 'val_dataloader', 'test_dataloader')),
                'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
                'train_cfg.max_iters=1', *extra]
    return options
