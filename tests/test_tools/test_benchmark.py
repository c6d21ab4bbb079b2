"""tools/benchmark.py end to end (subprocesses: every case runs in its own process anyway): the
JSON, the rounds, with_cp and compile options (the pieces: tests/test_benchmark/test_speed.py)."""
import json
import statistics

import pytest

from tool_cli import run_tool


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_benchmark_reports_every_case(tmp_path):
    out = tmp_path / 'bench.json'
    proc = run_tool('benchmark', '--models', 'swin:tiny', 'cvt:13', '--sizes', '64x96',
                    '--runs', '1', '--warmup', '0', '--threads', '1', '--json', out)
    report = json.loads(out.read_text())
    assert report['matmul_peak_gflops'] > 0
    rows = report['results']
    assert [(r['model'], r['mode']) for r in rows] == [
        ('swin:tiny', 'forward'), ('swin:tiny', 'train'), ('cvt:13', 'forward'),
        ('cvt:13', 'train')]
    for row in rows:
        assert 'error' not in row, row
        assert row['seconds'] > 0 and row['peak_mb'] >= 0
    swin = rows[0]
    assert abs(swin['params_m'] - 27.52) < 0.01
    assert swin['gmacs'] > 0 and 0 < swin['fraction_of_matmul_peak']
    assert 'swin:tiny' in proc.stdout and 'GFLOP/s' in proc.stdout


def test_unknown_model_is_an_error():
    proc = run_tool('benchmark', '--models', 'vit:tiny', '--sizes', '32x32', '--runs', '1',
                    '--no-flops', check=False)
    assert proc.returncode != 0 and 'unknown model family' in proc.stderr


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_rounds_interleave_and_report_medians_and_ratios(tmp_path):
    out = tmp_path / 'bench.json'
    proc = run_tool('benchmark', '--models', 'swin:tiny', 'cvt:13', '--sizes', '64x64',
                    '--modes', 'forward', '--runs', '1', '--warmup', '0', '--threads', '1',
                    '--rounds', '2', '--no-flops', '--json', out)
    report = json.loads(out.read_text())
    assert len(report['matmul_peak_per_round']) == 2
    assert report['matmul_peak_gflops'] == max(report['matmul_peak_per_round'])
    swin, cvt = report['results']
    assert len(swin['seconds_per_round']) == 2
    assert swin['seconds'] == statistics.median(swin['seconds_per_round'])
    assert 'time_ratio' not in swin
    assert cvt['relative_to'] == 'swin:tiny'
    assert cvt['time_ratio'] == pytest.approx(cvt['seconds'] / swin['seconds'], rel=1e-12)
    assert cvt['paired_time_ratio'] > 0
    # progress (each round, in alternating order) on stderr, the summary on stdout
    progress = [line for line in proc.stderr.splitlines() if line.startswith('[round')]
    order = [line.split()[2] for line in progress if 'forward' in line]
    assert order == ['swin:tiny', 'cvt:13', 'cvt:13', 'swin:tiny']
    assert 'x swin:tiny (paired by round' in proc.stdout


def test_with_cp_settings_including_act(tmp_path):
    out = tmp_path / 'bench.json'
    proc = run_tool('benchmark', '--models', 'cvt:13', '--sizes', '64x64', '--modes', 'train',
                    '--with-cp', 'act', '--runs', '1', '--warmup', '0', '--threads', '1',
                    '--no-flops', '--json', out)
    rows = json.loads(out.read_text())['results']
    assert [r['with_cp'] for r in rows] == ['act']
    assert 'error' not in rows[0] and rows[0]['seconds'] > 0
    assert 'cvt:13 +cp=act' in proc.stdout


@pytest.mark.slow  # end to end: make test-all / CI run it
def test_compile_reports_eager_and_compiled_side_by_side(tmp_path):
    out = tmp_path / 'bench.json'
    proc = run_tool('benchmark', '--models', 'swin:tiny', '--sizes', '64x96', '--modes',
                    'forward', '--compile', 'eager', '--runs', '2', '--warmup', '1', '--threads',
                    '1', '--no-flops', '--json', out)
    eager, compiled = json.loads(out.read_text())['results']
    assert eager['compile'] is None and 'speedup_over_eager' not in eager
    assert compiled['compile']['backend'] == 'eager'
    assert compiled['compile_seconds'] > 0 and compiled['seconds'] > 0
    assert compiled['speedup_over_eager'] == pytest.approx(eager['seconds'] / compiled['seconds'],
                                                           rel=1e-9)
    assert 'swin:tiny [eager]' in proc.stdout and 'x eager speed' in proc.stdout


def test_a_case_runs_in_the_tools_own_worker(capsys):
    """The hidden --worker runs one case in this process and prints its JSON (what the library's
    subprocesses do through ``python -m mmvit_plugin.benchmark.speed``)."""
    from tool_cli import run_tool_main
    case = dict(model='cvt:13', size=[32, 32], mode='forward', with_cp=False, compile=None,
                batch=1, runs=1, warmup=0, threads=1, device='cpu', dtype='fp32', peers={})
    assert run_tool_main('benchmark', ['--worker', json.dumps(case)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result['seconds'] > 0 and result['peak_mb'] >= 0
