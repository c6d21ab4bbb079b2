"""Running the scripts in tools/ as users run them: in a subprocess (:func:`run_tool`), or, for
speed, in this process (:func:`run_tool_main`: ``runpy`` runs the file as ``__main__`` with the
given ``sys.argv``, exactly what ``python tools/NAME.py ARGS`` runs). Tests of what the tools do
import :mod:`mmvit_plugin` instead; these are for tests of the command lines."""
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence, Union
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools'


def tool_path(name: str) -> Path:
    """``tools/<name>.py`` (or another file of tools/, e.g. ``dist_test.sh``)."""
    return TOOLS / (name if '.' in name else f'{name}.py')


def run_tool_main(name: str, argv: Sequence[Union[str, Path]] = ()) -> int:
    """``python tools/<name>.py ARGV`` in this process: the exit status (0 when the script ends
    without one). A ``SystemExit`` with a message (the tools' ``error: ...``) and any other
    exception propagate, as tests of the error messages want them."""
    argv = [str(tool_path(name)), *map(str, argv)]
    with mock.patch.object(sys, 'argv', argv):
        try:
            runpy.run_path(argv[0], run_name='__main__')
        except SystemExit as exit_:
            if exit_.code is None or isinstance(exit_.code, int):
                return exit_.code or 0
            raise
    return 0


def run_tool(name: str, *args: Union[str, Path], check: bool = True,
             cwd: Optional[Path] = REPO, env: Optional[dict] = None,
             timeout: Optional[float] = None) -> subprocess.CompletedProcess:
    """``python tools/<name>.py ARGS`` in a subprocess (``bash`` for a ``.sh``); with ``check``,
    a failure fails the test with the end of its output."""
    path = tool_path(name)
    command = (['bash'] if path.suffix == '.sh' else [sys.executable]) + [str(path)]
    res = subprocess.run(command + [str(a) for a in args], cwd=cwd, capture_output=True,
                         text=True, env=None if env is None else {**os.environ, **env},
                         timeout=timeout)
    if check and res.returncode != 0:
        pytest.fail(f'{path.name} exited {res.returncode}\n--- stdout ---\n{res.stdout[-4000:]}'
                    f'\n--- stderr ---\n{res.stderr[-6000:]}')
    return res
