"""Fixtures shared by the whole suite."""
import functools
import http.server
import threading
from pathlib import Path
from typing import Iterator

import pytest

from loopback import free_port


class LoopbackServer:
    """Serves the files of a folder over HTTP on 127.0.0.1 (nothing leaves the machine)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.requests = 0

    @property
    def base_url(self) -> str:
        return f'http://127.0.0.1:{self._server.server_address[1]}'

    def url(self, name: str) -> str:
        return f'{self.base_url}/{name}'

    def __enter__(self) -> 'LoopbackServer':
        self._server.requests_seen = self  # the handler counts requests here
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests_seen.requests += 1
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def loopback_server(tmp_path) -> Iterator[LoopbackServer]:
    """A loopback HTTP server over ``tmp_path / 'served'``; put files there and fetch ``.url(name)``."""
    root = tmp_path / 'served'
    root.mkdir()
    with LoopbackServer(root) as server:
        yield server


@pytest.fixture
def refused_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f'http://127.0.0.1:{free_port()}/weights.pth'


@pytest.fixture
def hub_dir(tmp_path, monkeypatch) -> Path:
    """torch's hub cache, emptied and moved under tmp_path for the test (downloads land here)."""
    import torch
    path = tmp_path / 'torch_hub'
    monkeypatch.setattr(torch.hub, '_hub_dir', str(path))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    return path


def pytest_report_header(config) -> str:
    """The kernels and thread count the numerical tests run with (`make test-numerics` changes
    both), so that a log says which summation order a result came from."""
    import torch
    return (f'torch {torch.__version__}: CPU capability {torch.backends.cpu.get_cpu_capability()}, '
            f'{torch.get_num_threads()} threads')


@pytest.fixture(scope='session')
def toy_data(tmp_path_factory):
    """``toy_data(kind, train=2, val=1, **options)``: the folder of a toy dataset
    (:mod:`mmvit_plugin.apis.toy_data`; ``'ade'`` or ``'coco'``), written once per session for
    each set of arguments. Tests that change a dataset copy it first."""
    from mmvit_plugin.apis.toy_data import make_toy_data
    made = {}

    def make(kind: str, train: int = 2, val: int = 1, **options) -> Path:
        key = (kind, train, val, tuple(sorted(options.items())))
        if key not in made:
            root = tmp_path_factory.mktemp(f'toy_{kind}')
            make_toy_data(kind, str(root), train, val, **options)
            made[key] = root
        return made[key]

    return make


@pytest.fixture
def log_records(request):
    """Records of a fresh MMLogger, which becomes the current one the package logs to."""
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance(f'test_{request.node.name}')
    records = []

    class Keep(logging.Handler):

        def emit(self, record):
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.fixture
def one_torch_thread():
    """One torch thread for small, overhead-bound steps: on a shared 2-core machine two threads
    mostly wait for each other (restored afterwards)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
