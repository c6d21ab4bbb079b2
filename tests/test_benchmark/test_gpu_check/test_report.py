"""mmvit_plugin.benchmark.gpu_check's report: the tables of what only a GPU run measures."""
from mmvit_plugin.benchmark.gpu_check import write_report


def test_report_tables_show_gpu_figures(tmp_path):
    """The tables of what only a GPU run measures (peak memory, syncs, kernels, AMP steps)."""
    report = dict(passed=True, seconds=200.0, settings=dict(memory_size=(800, 1333)), steps=dict(
        memory=dict(status='passed', seconds=30.0, result={
            'Swin/bf16': dict(ms=81.5, peak_mb=2345.4, syncs=0,
                              attention_kernels=['fmha_cutlassF_bf16_aligned_64x64_rf_sm80'])}),
        upernet=dict(status='passed', seconds=9.0, result={
            'size': [512, 512], 'batch': 2, 'AmpOptimWrapper (fp16)': dict(loss=7.25,
                                                                           loss_scale=65536.0)}),
        benchmark=dict(status='passed', seconds=150.0, result=dict(command='x', rows=[
            dict(model='swin:tiny', size='512x512', mode='train', seconds=0.05, peak_mb=900.0,
                 time_ratio=None, relative_to=None, error=None),
            dict(model='timm-swin:tiny', size='800x1333', mode='train', seconds=None,
                 peak_mb=None, time_ratio=None, relative_to=None, error='img size mismatch')]))))
    _, md_path = write_report(report, tmp_path)
    table = md_path.read_text()
    assert '| Swin | bf16 | 81.5 | 2345 | 0 | `fmha_cutlassF_bf16_aligned_64x64_rf_sm80` |' in table
    assert '| UperNet Swin-T 512x512 | AmpOptimWrapper (fp16) | loss 7.25, loss_scale 6.554e+04 |' \
        in table
    assert '| swin:tiny | 512x512 | train | 50.0 | 900 | – |' in table
    assert '| timm-swin:tiny | 800x1333 | train | img size mismatch |' in table


def test_report_compares_the_deformable_attention_paths(tmp_path):
    """The ms_deform_attn step's table: the CUDA op's row first, then the PyTorch path's."""
    errors = dict(output=1.2e-7, grad_value=3e-7, grad_locations=2.5e-6, grad_weights=4e-7)
    report = dict(passed=True, seconds=5.0, settings={}, steps=dict(ms_deform_attn=dict(
        status='passed', seconds=1.5, result=dict(
            size=[512, 512], levels=[[64, 64], [32, 32], [16, 16]], queries=5376,
            tolerance=1e-4, pytorch=errors, cuda_op=dict(errors, grad_locations=8e-6)))))
    _, md_path = write_report(report, tmp_path)
    table = md_path.read_text()
    assert "Mask2Former's shapes for 512x512: levels [[64, 64], [32, 32], [16, 16]]" in table
    rows = [line for line in table.splitlines() if line.startswith(('| cuda_op', '| pytorch'))]
    assert rows == ['| cuda_op | 1.20e-07 | 3.00e-07 | 8.00e-06 | 4.00e-07 |',
                    '| pytorch | 1.20e-07 | 3.00e-07 | 2.50e-06 | 4.00e-07 |']
