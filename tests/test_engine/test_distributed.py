"""mmvit_plugin.engine.distributed: the CPU process group."""
import os
import subprocess
import sys

from loopback import free_port

SCRIPT = '''
import atexit
import torch.distributed as dist
from mmengine.config import Config
# registered first, so it runs after the handlers registered later (atexit is last in, first out)
atexit.register(lambda: print('initialized at exit:', dist.is_initialized(), flush=True))
from mmvit_plugin.engine.distributed import setup_cpu_distributed
print('distributed:', setup_cpu_distributed(Config(dict(launcher='pytorch'))), flush=True)
'''


def test_the_gloo_group_is_destroyed_before_the_interpreter_exits():
    env = dict(os.environ, RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(free_port()), CUDA_VISIBLE_DEVICES='')
    res = subprocess.run([sys.executable, '-c', SCRIPT], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'distributed: True' in res.stdout
    assert 'initialized at exit: False' in res.stdout, res.stdout
