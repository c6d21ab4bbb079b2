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
    assert len(first['step_seconds']) == len(second['step_seconds']) == 3
    assert second['seconds'] == sorted(second['step_seconds'])[1]
    assert speed.paired_ratio([first], [first]) == 1. and speed.paired_ratio([second], [first]) > 0
    assert second['seconds'] > 0 and 'peak_mb' not in second  # the models share the process
    row = speed.make_row(case, {}, [second])
    assert 'peak_mb' not in row and 'peak' not in speed.format_row(row)


def test_paired_ratio_is_the_median_over_rounds_of_the_per_step_medians():
    runs = [dict(step_seconds=[2., 4., 9.]), dict(error='boom'), dict(step_seconds=[1., 1., 1.])]
    reference = [dict(step_seconds=[1., 1., 1.]), dict(step_seconds=[1.]),
                 dict(step_seconds=[2., 2., 2.])]
    assert speed.paired_ratio(runs, reference) == (4. + .5) / 2  # rounds 1 and 3: 4 and 0.5
    assert speed.paired_ratio([dict(seconds=1.)], [dict(seconds=1.)]) is None  # not interleaved


def test_interleave_pairs_compiled_with_eager_by_step(capsys):
    report = speed.benchmark(models=['cvt:13'], sizes=[(32, 32)], modes=['forward'], runs=3,
                             warmup=0, threads=1, compile_backend='eager', no_flops=True,
                             interleave=True)
    eager, compiled = report['results']
    assert not eager.get('compile') and compiled['compile']['backend'] == 'eager'
    assert compiled['paired_speedup_over_eager'] > 0 and compiled['speedup_over_eager'] > 0
    assert 'paired by iteration' in capsys.readouterr().out
