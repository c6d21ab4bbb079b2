"""Where the time goes (``tools/benchmark.py --profile``): per model, the share of a step's operator
time in matrix products and convolutions, attention, normalisation, memory moves and the rest, and
how close the model comes to this machine's measured GEMM peak.

Each case (model, size, mode) runs in a fresh process, as in :mod:`.speed` (same models, same
steps: ``forward`` in eval mode without gradients, ``train`` forward + backward). After the
warm-up, the step is timed ``runs`` times without the profiler (median: the step time), then run
``runs`` times under ``torch.profiler`` (CPU activity). Every operator's *self* CPU time (its own
time, without the operators it calls; on CPU, the wall time of the kernel on the calling thread,
its intra-op threads included) goes to one category by its name (:func:`op_category`); the shares
are of the sum over all operators, so they add up to 100 %. The profiler adds a few microseconds
per operator, which inflates the categories of many small operators (memory moves, the rest)
a little.

Achieved throughput: 2 FLOPs per multiply-accumulate counted by :func:`.flops.count_flops` for one
forward (the backward of a product costs two more: a ``train`` step is counted as 3 forwards), over
the step time, against the square fp32 GEMM peak measured at the start of the run
(:func:`.speed.matmul_peak_gflops`): ``model`` is that fraction for the whole step, ``in GEMMs``
the same FLOPs over the matmul/conv and attention categories' share of the step time (how well the
products themselves run). On a loaded machine take ``--threads 1 --clock process``: the step time
and the peak are then CPU times of this process, which other jobs barely change (the operators'
profiled times stay wall-clock, so the shares still move a little with the load).
"""
import json
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch.profiler import ProfilerActivity, profile

from .speed import _timed, build_step, matmul_peak_gflops, run_case, static_stats

#: The categories, in report order; ``rest`` takes every operator the others do not name.
CATEGORIES = ('matmul/conv', 'attention', 'normalisation', 'memory moves', 'rest')

_MATMUL = {'mm', 'addmm', 'bmm', 'baddbmm', 'addbmm', 'matmul', 'linear', 'einsum', 'dot', 'mv',
           'addmv', '_addmm_activation', 'mkldnn_linear', 'linear_backward', 'im2col', 'col2im'}
_ATTENTION = {'softmax', '_softmax', '_safe_softmax', '_softmax_backward_data', 'log_softmax',
              '_log_softmax', '_log_softmax_backward_data'}
_MOVES = {'copy_', '_copy_from', '_copy_from_and_resize', 'clone', 'contiguous', '_to_copy', 'to',
          'cat', 'stack', 'pad', 'constant_pad_nd', 'roll', 'flip', 'repeat', 'tile',
          'index_select', 'index_select_backward', 'gather', 'scatter', 'scatter_add_', 'index',
          'index_put_', '_index_put_impl_', 'index_add_', 'take', 'embedding', 'permute',
          'transpose', 't', 'view', 'reshape', '_reshape_alias', '_unsafe_view', 'as_strided',
          'expand', 'expand_as', 'unfold', 'unfold_backward', 'split', 'split_with_sizes',
          'chunk', 'narrow', 'slice', 'slice_backward', 'select', 'select_backward', 'unbind',
          'flatten', 'unflatten', 'squeeze', 'unsqueeze', 'movedim', 'swapaxes', 'alias',
          'detach', 'lift_fresh', 'fill_', 'zero_', 'zeros', 'zeros_like', 'new_zeros', 'empty',
          'empty_like', 'new_empty', 'empty_strided', 'new_empty_strided', 'resize_',
          'pixel_shuffle', 'channel_shuffle'}


def op_category(name: str) -> str:
    """The category (one of :data:`CATEGORIES`) of a profiler event name, e.g. ``aten::addmm``.

    matmul/conv: matrix products and convolutions, forward and backward; attention: fused
    attention kernels and softmax; normalisation: layer / batch / group norm; memory moves: copies,
    concatenation, padding, rolls, gathers, layout changes and views, fills and allocations (what
    window partition, stripe split, permute and ``contiguous`` cost); rest: everything else
    (elementwise arithmetic, activations, reductions, the autograd engine's own events)."""
    op = name.split('::', 1)[-1]
    if op in _MATMUL or 'conv' in op and op != 'convert_element_type':
        return 'matmul/conv'
    if op in _ATTENTION or 'scaled_dot_product' in op or 'attention' in op:
        return 'attention'
    if any(norm in op for norm in ('layer_norm', 'batch_norm', 'group_norm', 'instance_norm')):
        return 'normalisation'
    if op in _MOVES:
        return 'memory moves'
    return 'rest'


def shares(op_seconds: Dict[str, float]) -> Dict[str, float]:
    """Each category's share (in %) of the summed operator time ``{name: seconds}``."""
    total = sum(op_seconds.values())
    sums = dict.fromkeys(CATEGORIES, 0.)
    for name, seconds in op_seconds.items():
        sums[op_category(name)] += seconds
    return {cat: 100 * s / total if total else 0. for cat, s in sums.items()}


def profile_worker(case: Dict[str, Any]) -> Dict[str, Any]:
    """One case in this process: the step time (median, no profiler) and every operator's self CPU
    time per step (seconds) under the profiler."""
    step = build_step(case)
    seconds = _timed(step, case['runs'], case['warmup'], cuda=False,
                     clock=case.get('clock', 'wall'))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(case['runs']):
            step()
    ops: Dict[str, float] = {}
    for event in prof.key_averages():
        if event.self_cpu_time_total > 0:
            ops[event.key] = ops.get(event.key, 0.) + event.self_cpu_time_total / 1e6 / case['runs']
    return dict(seconds=seconds, ops=ops)


def profile_backbones(models: Sequence[str], sizes: Sequence[Tuple[int, int]],
                      modes: Sequence[str] = ('forward', 'train'), batch: int = 1, runs: int = 3,
                      warmup: int = 1, threads: int = 2, peer: Sequence[str] = (),
                      no_flops: bool = False, top: int = 5, json_out: Optional[str] = None,
                      clock: str = 'wall') -> Dict[str, Any]:
    """Profile every (size, model, mode) case (see the module docstring); the table to stdout,
    progress to stderr, the report (with every operator's time) as JSON to ``json_out``.

    ``peer``: ``NAME:ARCH=MODULE:FUNC`` builders as for :func:`.speed.benchmark`; ``top``: how many
    of a case's slowest operators to print after its row; ``clock``: ``'process'`` takes the
    step time and the GEMM peak in this process's CPU time (see :func:`.speed.benchmark`)."""
    peers = dict(p.split('=', 1) for p in peer)
    models = list(models) + [p for p in peers if p not in models]
    peak = matmul_peak_gflops('cpu', 'fp32', threads, clock=clock)
    print(f'matmul peak (fp32, {threads} threads, cpu): {peak:.1f} GFLOP/s', flush=True)
    print(format_header(), flush=True)
    results: List[Dict[str, Any]] = []
    for size in sizes:
        for spec in models:
            stats = {} if no_flops else static_stats(spec, size, peers)
            for mode in modes:
                case = dict(model=spec, size=list(size), mode=mode, with_cp=False, compile=None,
                            batch=batch, runs=runs, warmup=warmup, threads=threads,
                            device='cpu', dtype='fp32', peers=peers, clock=clock)
                row = make_profile_row(case, stats, run_case(case, __name__), peak)
                results.append(row)
                print(format_profile_row(row), flush=True)
                for name, seconds in row.get('top_ops', [])[:top]:
                    print(f'    {seconds * 1000:8.1f} ms  {op_category(name):<13} {name}',
                          file=sys.stderr, flush=True)
    report = dict(matmul_peak_gflops=peak, torch=torch.__version__, results=results)
    if json_out:
        with open(json_out, 'w') as f:
            json.dump(report, f, indent=1)
    return report


def make_profile_row(case: Dict[str, Any], stats: Dict[str, Any], result: Dict[str, Any],
                     peak: float) -> Dict[str, Any]:
    """One case's report: step time, shares, throughput against ``peak`` (GFLOP/s)."""
    row = dict(model=case['model'], size=list(case['size']), mode=case['mode'],
               batch=case['batch'], **stats)
    if 'error' in result:
        return dict(row, error=result['error'])
    ops = result['ops']
    row.update(seconds=result['seconds'], profiled_seconds=sum(ops.values()), shares=shares(ops),
               top_ops=sorted(ops.items(), key=lambda item: -item[1]))
    if row.get('gmacs'):
        flops = 2 * row['gmacs'] * 1e9 * case['batch'] * (3 if case['mode'] == 'train' else 1)
        # the products' share of the step time (profiled times are wall-clock, the step time may
        # be CPU time: shares mix the two consistently)
        product_share = (row['shares']['matmul/conv'] + row['shares']['attention']) / 100
        product_seconds = product_share * row['seconds']
        row['fraction_of_matmul_peak'] = flops / row['seconds'] / 1e9 / peak
        row['fraction_of_matmul_peak_in_products'] = flops / product_seconds / 1e9 / peak
    return row


def format_header() -> str:
    cats = ' '.join(f'{c:>13}' for c in CATEGORIES)
    return f'{"model":<24} {"size":>9} {"mode":<7} {"ms/step":>9} {cats}   % of GEMM peak: model (in GEMMs)'


def format_profile_row(row: Dict[str, Any]) -> str:
    size = 'x'.join(map(str, row['size']))
    head = f'{row["model"]:<24} {size:>9} {row["mode"]:<7}'
    if 'error' in row:
        return f'{head} ERROR {row["error"]}'
    cats = ' '.join(f'{row["shares"][c]:12.1f}%' for c in CATEGORIES)
    line = f'{head} {row["seconds"] * 1000:9.1f} {cats}'
    if 'fraction_of_matmul_peak' in row:
        line += (f'   {100 * row["fraction_of_matmul_peak"]:5.1f}% '
                 f'({100 * row["fraction_of_matmul_peak_in_products"]:5.1f}%)')
    return line


if __name__ == '__main__':  # one case in a fresh process (run_case); prints its JSON result
    print(json.dumps(profile_worker(json.loads(sys.argv[1]))))
