"""download_checkpoint in a 2-process gloo group on CPU: rank 0 downloads and rank 1 uses its file;
when rank 0's download fails, both ranks stop with its error instead of waiting for each other."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from loopback import free_port

REPO = Path(__file__).resolve().parents[2]
#: Seconds both ranks get, start-up included; the process group gives up on a peer after 30.
DEADLINE_S = 90

RANK = r'''
import json, sys
from datetime import timedelta
import torch
import torch.distributed as dist
from mmvit_plugin.checkpoint import download_checkpoint

hub_dir, good_url, bad_url = sys.argv[1:]
torch.hub.set_dir(hub_dir)
dist.init_process_group('gloo', timeout=timedelta(seconds=30))
print(json.dumps({'good': download_checkpoint(good_url)}), flush=True)
download_checkpoint(bad_url)  # raises on every rank
'''


def test_every_rank_gets_rank_0s_file_or_its_error(tmp_path, loopback_server, refused_url):
    torch.save({'w': torch.ones(2)}, loopback_server.root / 'good.pth')
    env = dict(os.environ, WORLD_SIZE='2', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')])))
    args = [sys.executable, '-c', RANK, str(tmp_path / 'hub'), loopback_server.url('good.pth'),
            refused_url]
    ranks = [subprocess.Popen(args, env=dict(env, RANK=str(rank)), cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for rank in (0, 1)]
    deadline = time.monotonic() + DEADLINE_S
    outputs = []
    try:
        for proc in ranks:
            outputs.append(proc.communicate(timeout=max(1., deadline - time.monotonic())))
    finally:
        for proc in ranks:  # a rank still waiting past the deadline fails the test, not the suite
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for rank, (proc, (out, err)) in enumerate(zip(ranks, outputs)):
        assert proc.returncode == 1, f'rank {rank}:\n{err}'
        good = json.loads(out.splitlines()[0])['good']
        assert Path(good).read_bytes() == (loopback_server.root / 'good.pth').read_bytes()
        last = err.strip().splitlines()[-1]  # torch prefixes it with [rankN]
        assert 'mmvit_plugin.checkpoint.CheckpointError: ' in last, f'rank {rank}:\n{err}'
        assert refused_url in last and 'refused' in last.lower()
        if rank == 1:
            assert 'rank 0 could not download the checkpoint, so rank 1 stops too' in last
    assert loopback_server.requests == 1  # rank 1 used rank 0's download
