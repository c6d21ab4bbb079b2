import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'benchmark.py'


def test_benchmark_reports_every_case(tmp_path):
    out = tmp_path / 'bench.json'
    proc = subprocess.run(
        [sys.executable, str(TOOL), '--models', 'swin:tiny', 'cvt:13', '--sizes', '64x96',
         '--runs', '1', '--warmup', '0', '--threads', '1', '--json', str(out)],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report['matmul_peak_gflops'] > 0
    rows = report['results']
    assert [(r['model'], r['mode']) for r in rows] == [
        ('swin:tiny', 'forward'), ('swin:tiny', 'train'), ('cvt:13', 'forward'), ('cvt:13', 'train')]
    for row in rows:
        assert 'error' not in row, row
        assert row['seconds'] > 0 and row['peak_mb'] >= 0
    swin = rows[0]
    assert abs(swin['params_m'] - 27.52) < 0.01
    assert swin['gmacs'] > 0 and 0 < swin['fraction_of_matmul_peak']
    assert 'swin:tiny' in proc.stdout and 'GFLOP/s' in proc.stdout


def test_unknown_model_is_an_error():
    proc = subprocess.run([sys.executable, str(TOOL), '--models', 'vit:tiny', '--sizes', '32x32',
                           '--runs', '1', '--no-flops'], capture_output=True, text=True)
    assert proc.returncode != 0 and 'unknown model family' in proc.stderr
