"""tools/make_toy_data.py's command line (what it writes: tests/test_apis/test_toy_data.py)."""
from tool_cli import run_tool


def test_writes_both_splits_and_says_so(tmp_path):
    res = run_tool('make_toy_data', '--kind', 'coco', '--out', tmp_path / 'coco', '--train', '2',
                   '--val', '1', '--mask-format', 'rle', '--seed', '3', '--size', '64')
    assert 'COCO train: 2 images' in res.stdout and f'-> {tmp_path / "coco"}' in res.stdout
    assert len(list((tmp_path / 'coco' / 'val2017').glob('*.jpg'))) == 1
    assert (tmp_path / 'coco' / 'annotations' / 'instances_train2017.json').is_file()


def test_bad_arguments(tmp_path):
    res = run_tool('make_toy_data', '--kind', 'ade', '--out', tmp_path, '--train', '0',
                   check=False)
    assert res.returncode != 0 and '--train' in res.stderr
