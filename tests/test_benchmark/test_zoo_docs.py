"""mmvit_plugin.benchmark.zoo_docs: the metafile's measured lines (--measure-complexity). The
generated docs/configs.md against the metafile: tests/test_configs.py."""
import pytest

from mmvit_plugin.benchmark.model_flops import get_flops
from mmvit_plugin.benchmark.zoo import REPO, ZooError, load_zoo
from mmvit_plugin.benchmark.zoo_docs import (DOCS_BEGIN, DOCS_END, docs_block, measure_complexity,
                                             replace_docs_block, set_measured)

SEG_CFG = REPO / 'configs' / 'toy' / 'upernet_cswin_toy.py'


def test_measure_complexity_writes_get_flops_figures_into_the_metafile(tmp_path):
    """--measure-complexity: the metafile's measured lines become tools/get_flops.py's figures at
    the model's FLOPs Input; everything else in the file (comments too) stays."""
    metafile = tmp_path / 'meta.yaml'
    metafile.write_text('# a comment that stays\nSources: {}\nModels:\n'
                        '- Name: upernet_cswin_toy\n  In Collection: UperNet\n'
                        '  Config: configs/toy/upernet_cswin_toy.py\n  Metadata:\n'
                        '    Backbone: toy  # stays too\n    Parameters: null\n    FLOPs: 1\n'
                        '    FLOPs Input: [64, 96]\n  Results: []\n')
    zoo = load_zoo(metafile)
    text = measure_complexity(zoo, zoo.models)
    expected = get_flops(str(SEG_CFG), [64, 96])  # what tools/get_flops.py counts, here
    metafile.write_text(text)
    model = load_zoo(metafile).models[0]
    assert model.metadata['Parameters'] == expected['params'] > 0
    assert model.metadata['FLOPs'] == expected['macs'] > 1
    assert model.metadata['FLOPs Input'] == [64, 96]
    assert text.startswith('# a comment that stays\n') and 'Backbone: toy  # stays too' in text
    with pytest.raises(ZooError, match='no `FLOPs Input:` line'):
        set_measured(text.replace('    FLOPs Input: [64, 96]\n', ''), 'upernet_cswin_toy',
                     dict(Parameters=1, FLOPs=2, input=[3, 4]), metafile)


def test_the_generated_block_is_replaced_between_its_markers(tmp_path):
    text = f'# Configs\n\n{DOCS_BEGIN}\nold\n{DOCS_END}\n\nAfter.\n'
    new = replace_docs_block(text, f'{DOCS_BEGIN}\nnew\n{DOCS_END}')
    assert new == text.replace('old', 'new') and docs_block(new) == f'{DOCS_BEGIN}\nnew\n{DOCS_END}'
    assert docs_block('no markers') == ''
    with pytest.raises(ZooError, match='the markers of the generated block are missing'):
        replace_docs_block('no markers', 'block', tmp_path / 'configs.md')
