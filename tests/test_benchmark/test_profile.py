"""mmvit_plugin.benchmark.profile (tools/benchmark.py --profile): operators to categories, shares
that add up, one case profiled, the command line."""
import json

import pytest

from mmvit_plugin.benchmark import profile
from tool_cli import run_tool_main


@pytest.mark.parametrize('name, category', [
    ('aten::addmm', 'matmul/conv'), ('aten::bmm', 'matmul/conv'),
    ('aten::convolution_backward', 'matmul/conv'), ('aten::mkldnn_convolution', 'matmul/conv'),
    ('aten::_scaled_dot_product_flash_attention_for_cpu', 'attention'),
    ('aten::_softmax_backward_data', 'attention'), ('aten::native_layer_norm', 'normalisation'),
    ('aten::native_batch_norm_backward', 'normalisation'), ('aten::roll', 'memory moves'),
    ('aten::constant_pad_nd', 'memory moves'), ('aten::index_select', 'memory moves'),
    ('aten::copy_', 'memory moves'), ('aten::gelu', 'rest'), ('aten::add_', 'rest'),
    ('autograd::engine::evaluate_function: AddmmBackward0', 'rest')])
def test_operators_land_in_their_category(name, category):
    assert profile.op_category(name) == category


def test_shares_add_up_to_the_whole():
    shares = profile.shares({'aten::addmm': 3., 'aten::roll': 1., 'aten::gelu': 1.,
                             'aten::_softmax': 0.})
    assert list(shares) == list(profile.CATEGORIES)
    assert shares['matmul/conv'] == pytest.approx(60.) and shares['rest'] == pytest.approx(20.)
    assert sum(shares.values()) == pytest.approx(100.)


def test_a_case_is_profiled_and_its_products_found():
    case = dict(model='swin:tiny', size=(32, 32), mode='train', with_cp=False, compile=None,
                batch=1, runs=1, warmup=0, threads=1, device='cpu', dtype='fp32', peers={})
    result = profile.profile_worker(case)
    assert result['seconds'] > 0
    ops = result['ops']
    assert ops['aten::addmm'] > 0 and ops['aten::native_layer_norm_backward'] > 0
    row = profile.make_profile_row(case, dict(gmacs=0.1), result, peak=100.)
    assert sum(row['shares'].values()) == pytest.approx(100.)
    assert row['shares']['matmul/conv'] > 10
    # a training step counts 3 forwards: 0.6 GFLOP over the step time, against 100 GFLOP/s
    assert row['fraction_of_matmul_peak'] == pytest.approx(0.6 / result['seconds'] / 100)
    assert row['fraction_of_matmul_peak_in_products'] > row['fraction_of_matmul_peak']
    assert 'swin:tiny' in profile.format_profile_row(row)


def test_profile_flag_of_the_tool(tmp_path, capsys):
    out = tmp_path / 'profile.json'
    status = run_tool_main('benchmark', ['--profile', '--models', 'swin:tiny', '--sizes', '32x32',
                                         '--modes', 'forward', '--runs', '1', '--warmup', '0',
                                         '--threads', '1', '--no-flops', '--json', out])
    assert status == 0
    row, = json.loads(out.read_text())['results']
    assert row['model'] == 'swin:tiny' and 'error' not in row, row
    assert sum(row['shares'].values()) == pytest.approx(100.)
    stdout = capsys.readouterr().out
    assert 'memory moves' in stdout and 'swin:tiny' in stdout
