"""tools/get_flops.py's command line: the table and the JSON of one count, and the errors (what is
counted: tests/test_benchmark/test_model_flops.py)."""
import json

import pytest

from tool_cli import REPO, run_tool, run_tool_main

SEG_CFG = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'


def test_table_and_json(tmp_path, capsys):
    out = tmp_path / 'flops.json'
    assert run_tool_main('get_flops', [SEG_CFG, '--shape', 64, 128, '--json', out]) == 0
    result, table = json.loads(out.read_text()), capsys.readouterr().out
    assert result['config'] == str(SEG_CFG) and result['input_shape'] == [1, 3, 64, 128]
    assert result['macs'] == sum(m['macs'] for m in result['modules'].values() if m['in_total'])
    assert 'input 1x3x64x128' in table and f'{result["macs"] / 1e9:.2f}' in table
    assert 'auxiliary_head *' in table and 'backbone + decode_head' in table


@pytest.mark.parametrize('shape', [['64', '64', '64'], ['16', '64'], ['0']])
def test_bad_shape_is_an_error(shape):
    with pytest.raises(SystemExit, match='--shape takes H W or one size N'):
        run_tool_main('get_flops', [SEG_CFG, '--shape', *shape])


def test_non_integer_shape_is_a_usage_error(capsys):
    assert run_tool_main('get_flops', [SEG_CFG, '--shape', 'wide']) == 2
    assert "invalid int value: 'wide'" in capsys.readouterr().err


def test_missing_config_exits_non_zero(tmp_path):
    proc = run_tool('get_flops', tmp_path / 'nope.py', check=False)
    assert proc.returncode == 1 and 'nope.py' in proc.stderr and 'not found' in proc.stderr
