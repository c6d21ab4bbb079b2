"""The GPU check's report: ``gpu_check.json`` (everything) and ``gpu_check.md`` (tables)."""
import json
from pathlib import Path
from typing import Any, Dict, Tuple


def _fmt(value: Any, spec: str = '.3g') -> str:
    return '–' if value is None else format(value, spec)


def markdown_report(report: Dict[str, Any]) -> str:
    steps = report['steps']
    env = steps.get('environment', {}).get('result', {})
    lines = ['# GPU check', '']
    if env:
        where = env.get('gpu') or env.get('cpu') or env.get('device')
        lines.append(f"{where} ({env.get('device')}), torch {env.get('torch')} (CUDA "
                     f"{env.get('torch_cuda')}, cuDNN {env.get('cudnn')}), mmcv {env.get('mmcv')} "
                     f"(ops: CUDA {env.get('mmcv_ops_cuda')}), mmseg {env.get('mmseg')}, mmdet "
                     f"{env.get('mmdet')}, commit {env.get('commit')}"
                     + (', **--quick** (tiny sizes)' if env.get('quick') else '') + '.')
        lines.append('')
    verdict = 'PASSED' if report['passed'] else 'FAILED'
    lines += [f"**{verdict}** in {report['seconds']:.0f} s.", '',
              '| step | status | seconds | problem |', '|---|---|---|---|']
    for name, record in steps.items():
        problem = (record.get('error') or '').replace('|', '/').replace('\n', ' ')
        lines.append(f"| {name} | {record['status']} | {record['seconds']:.1f} | {problem[:300]} |")

    backbones = steps.get('backbones', {}).get('result')
    if backbones:
        lines += ['', '## Backbones: forward + backward vs fp32', '',
                  '| backbone | precision | finite | max output error (tolerance) | '
                  'gradient error | seconds |', '|---|---|---|---|---|---|']
        for key, row in backbones.items():
            name, precision = key.split('/')
            errors = row.get('output_errors')
            error = (f"{max(errors):.2e} ({row['tolerance']:g})" if errors else
                     row.get('error', '–' if precision == 'fp32' else 'n/a'))
            extra = f", {row['skipped_steps']} skipped" if row.get('skipped_steps') else ''
            lines.append(f"| {name} | {precision} | {'yes' if row.get('finite') else 'NO'} | "
                         f"{error} | {_fmt(row.get('grad_error'), '.2e')}{extra} | "
                         f"{_fmt(row.get('seconds'), '.2f')} |")

    memory = steps.get('memory', {}).get('result')
    if memory:
        size = 'x'.join(map(str, report['settings']['memory_size']))
        lines += ['', f'## {size}, batch 1: forward + backward', '',
                  '| backbone | precision | ms | peak MB | syncs | attention kernels |',
                  '|---|---|---|---|---|---|']
        for key, row in memory.items():
            name, precision = key.split('/')
            kernels = ', '.join(f'`{k}`' for k in row.get('attention_kernels', [])) or '–'
            lines.append(f"| {name} | {precision} | {_fmt(row.get('ms'), '.1f')} | "
                         f"{_fmt(row.get('peak_mb'), '.0f')} | {_fmt(row.get('syncs'), 'd')} | "
                         f"{row.get('error', kernels)} |")

    multiscale = steps.get('multiscale', {}).get('result')
    if multiscale:
        clocks = {row['clock'] for row in multiscale.values() if isinstance(row, dict)}
        lines += ['', '## Multi-scale: forward + backward right after a size change vs the same '
                  'size again', '', f"Sizes (mmdet 3x pipeline, padded to 32): "
                  f"{', '.join(multiscale['sizes'])}; {multiscale['rounds']} round(s); "
                  f"{', '.join(sorted(clocks))}.", '',
                  '| backbone | after a size change (ms) | same size (ms) | ratio | pairs: median '
                  '(quartiles) | tensors kept (MB) |', '|---|---|---|---|---|---|']
        for name, row in multiscale.items():
            if not isinstance(row, dict):
                continue
            q1, q3 = row['paired_ratio_quartiles']
            lines.append(f"| {name} | {row['ms_after_size_change']:.1f} | "
                         f"{row['ms_same_size']:.1f} | {row['ratio']:.3f} | "
                         f"{row['paired_ratio_median']:.3f} ({q1:.3f}-{q3:.3f}) | "
                         f"{row['held_tensor_mb_growth']:+.1f} |")

    switch = steps.get('attn_switch', {}).get('result')
    if switch:
        lines += ['', '## attn_impl explicit vs sdpa (fp32)', '',
                  '| backbone | output error | gradient error |', '|---|---|---|']
        for name, row in switch.items():
            if isinstance(row, dict):
                lines.append(f"| {name} | {row['output_error']:.2e} | {row['grad_error']:.2e} |")
            else:
                lines.append(f'| {name} | {row} | |')

    deform = steps.get('ms_deform_attn', {}).get('result')
    if deform:
        paths = [k for k in ('cuda_op', 'pytorch') if isinstance(deform.get(k), dict)]
        lines += ['', '## Multi-scale deformable attention (fp32) vs float64 reference', '',
                  f"Mask2Former's shapes for {'x'.join(map(str, deform['size']))}: levels "
                  f"{deform['levels']}, {deform['queries']} queries; relative error (max), "
                  f"tolerance {deform['tolerance']:g}.", '',
                  '| path | output | grad value | grad locations | grad weights |',
                  '|---|---|---|---|---|']
        for path in paths:
            row = deform[path]
            lines.append(f"| {path} | {row['output']:.2e} | {row['grad_value']:.2e} | "
                         f"{row['grad_locations']:.2e} | {row['grad_weights']:.2e} |")

    train_rows = []
    for step, label in (('upernet', 'UperNet Swin-T'), ('mask_rcnn', 'Mask R-CNN Swin-T')):
        result = steps.get(step, {}).get('result') or {}
        for wrapper, losses in result.items():
            if wrapper in ('size', 'batch'):
                continue
            text = losses if isinstance(losses, str) else ', '.join(
                f'{k} {v:.4g}' for k, v in losses.items())
            train_rows.append(f"| {label} {'x'.join(map(str, result['size']))} | {wrapper} | "
                              f'{text} |')
    if train_rows:
        lines += ['', '## Training steps (batch 2)', '', '| model | optimizer wrapper | losses |',
                  '|---|---|---|'] + train_rows

    bench = steps.get('benchmark', {}).get('result')
    if bench:
        lines += ['', '## tools/benchmark.py', '', f"`{bench['command']}`", '',
                  '| model | size | mode | ms | peak MB | time / first model |',
                  '|---|---|---|---|---|---|']
        for row in bench['rows']:
            if row.get('error'):
                lines.append(f"| {row['model']} | {row['size']} | {row['mode']} | "
                             f"{row['error'][:120]} | | |")
                continue
            ratio = (f"{row['time_ratio']:.2f}x {row['relative_to']}" if row.get('time_ratio')
                     else '–')
            lines.append(f"| {row['model']} | {row['size']} | {row['mode']} | "
                         f"{1000 * row['seconds']:.1f} | {_fmt(row.get('peak_mb'), '.0f')} | "
                         f'{ratio} |')
    return '\n'.join(lines) + '\n'


def write_report(report: Dict[str, Any], out_dir: Path) -> Tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / 'gpu_check.json', out_dir / 'gpu_check.md'
    json_path.write_text(json.dumps(report, indent=1, default=str))
    md_path.write_text(markdown_report(report))
    return json_path, md_path
