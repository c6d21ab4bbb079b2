"""Checkpoint files for tests that the loaders must refuse."""
import os

import torch


class RunsCode:
    """Pickles as a call of ``os.mkdir(path)``: loading it unsafely creates ``path``."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path, )


def save_code_running_pickle(path, marker) -> None:
    """A checkpoint-looking file whose unpickling creates the folder ``marker``."""
    torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': RunsCode(marker)}, path)
