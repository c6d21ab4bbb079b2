"""mmvit_plugin.benchmark.speed's pieces: the models it builds, one case measured in a fresh
process, the rows (end to end through tools/benchmark.py: tests/test_tools/test_benchmark.py)."""
import pytest

from mmvit_plugin.benchmark import speed


def test_with_cp_words_and_act_only_for_our_backbones():
    assert [v for w in ('off', 'all') for v in speed.CP_SETTINGS[w]] == [False, False, 'act', True]
    assert speed.build_model('cvt:13', (64, 64), 'act', {}).with_cp == 'act'
    assert speed.build_model('swin:tiny', (64, 64), True, {}).with_cp is True
    with pytest.raises(SystemExit, match="with_cp='act'"):
        speed.build_model('mmseg-swin:tiny', (64, 64), 'act', {})
    with pytest.raises(SystemExit, match="unknown model family 'vit'"):
        speed.build_model('vit:tiny', (64, 64), False, {})


def test_a_case_runs_in_a_fresh_process():
    case = dict(model='cvt:13', size=(64, 64), mode='train', with_cp='act', compile=None,
                batch=1, runs=1, warmup=0, threads=1, device='cpu', dtype='fp32', peers={})
    result = speed.run_case(case)
    assert 'error' not in result, result
    assert result['seconds'] > 0 and result['peak_mb'] >= 0
    failed = speed.run_case(dict(case, model='mmseg-swin:tiny'))  # act: ours only
    assert "with_cp='act'" in failed['error']


def test_rows_take_medians_over_the_rounds_and_name_errors():
    case = dict(model='swin:tiny', size=(64, 64), mode='forward', with_cp=False, compile=None,
                peers={})
    row = speed.make_row(case, {'params_m': 27.5}, [dict(seconds=3., peak_mb=10.),
                                                    dict(error='boom'),
                                                    dict(seconds=1., peak_mb=30.)])
    assert (row['seconds'], row['peak_mb'], row['params_m']) == (2., 20., 27.5)
    assert row['seconds_per_round'] == [3., None, 1.] and 'peers' not in row
    assert 'swin:tiny' in speed.format_row(row) and '2000.0 ms' in speed.format_row(row)
    row = speed.make_row(case, {}, [dict(error='boom')])
    assert row['error'] == 'boom' and speed.format_row(row).endswith('ERROR boom')


def test_interleaved_models_share_one_process_and_pair_every_iteration():
    case = dict(model='swin:tiny', size=(32, 32), mode='forward', with_cp=False, compile=None,
                batch=1, runs=3, warmup=0, threads=1, device='cpu', dtype='fp32', peers={})
    first, second = speed.run_worker(dict(cases=[case, dict(case, model='cvt:13')]))
    assert first['ratio_to_first'] == 1. and second['ratio_to_first'] > 0
    assert second['seconds'] > 0 and 'peak_mb' not in second  # the models share the process
    row = speed.make_row(case, {}, [second])
    assert 'peak_mb' not in row and 'peak' not in speed.format_row(row)
