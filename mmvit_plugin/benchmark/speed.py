"""Speed, memory, parameters and FLOPs of the backbones, side by side in one run
(tools/benchmark.py).

Each measurement runs in a fresh subprocess, so that peak memory is that case's alone: on CPU the
peak resident set size above the size right after building the model (the kernel's high-water
mark is reset first), on CUDA ``torch.cuda.max_memory_allocated`` above the model's own memory.
Times are medians over ``--runs`` after ``--warmup`` runs. With ``--rounds R`` every case is
measured R times, the cases interleaved (every other round in reverse order) so that a changing
machine load hits all models alike; times and peaks are then medians over the rounds, and each
row's time is also given as a ratio to the first model's (same size and mode), both of the
medians and, more robust on a shared machine, the median of the per-round ratios. Progress goes
to stderr, the summary to stdout. FLOPs are multiply-accumulates counted by mmengine's jit
analysis (with a handle for ``scaled_dot_product_attention``). The matmul peak is measured in the
same run, at the start of every round (the best is kept): a square fp32 GEMM, or bf16 with
``--dtype bf16``; achieved GFLOP/s of each forward is reported against it (2 FLOPs per
multiply-accumulate).

``--with-cp`` takes one or more of ``off``, ``act`` (recompute the MLP activations in backward),
``on`` (recompute whole blocks) for the train-mode cases (``both`` = off on, ``all`` = off act on).

``--compile [BACKEND]`` adds, after every eager case, the same case through
``torch.compile(model, backend=BACKEND)`` (default inductor, with the options that training
uses: ``mmvit_plugin.engine.compile``; ``--compile-mode``, ``--compile-dynamic``). Its first step,
which compiles, is timed on its own (``compile_seconds``) and left out of the time and of the
peak: warm-up runs first there, and the peak is measured above the size after compiling.
Compiled rows give their speed-up over the eager row; with ``--interleave`` the eager and compiled
models of a setting run in one process, a step of each in turn, and the speed-up is also given
paired by step (a sequential eager-then-compiled run put Swin-T's compiled forward at 1.13x the
eager time where interleaved runs gave 0.87-0.96x on the same machine: docs/benchmarks.md).

Models: ``swin``, ``cswin``, ``cvt``, ``mpvit`` (this package); ``mmseg-swin`` (mmseg's
SwinTransformer) and ``timm-swin`` (timm, ``features_only``) where installed; and any builder given
with ``--peer NAME:ARCH=module:function`` (called as ``function(arch, in_size)``, returning a
module whose forward takes an NCHW batch), e.g. a wrapper around an official implementation.
"""
import importlib
import json
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from mmvit_plugin.engine.compile import compile_kwargs
from mmvit_plugin.models.families import FAMILIES, build_backbone
from .flops import count_flops, count_params

DEFAULT_MODELS = ['swin:tiny', 'cswin:tiny', 'cvt:13', 'mpvit:small']
MMSEG_SWIN = {
    'tiny': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'small': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'base': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
}
#: Families of the other implementations this benchmark builds (besides --peer builders).
PEER_FAMILIES = ('mmseg-swin', 'timm-swin')
TIMM_SWIN = {'tiny': 'swin_tiny_patch4_window7_224', 'small': 'swin_small_patch4_window7_224',
             'base': 'swin_base_patch4_window7_224'}


# --- model builders -----------------------------------------------------------------------------
#: ``--with-cp`` words to ``with_cp`` values.
CP_SETTINGS = {'off': [False], 'act': ['act'], 'on': [True], 'both': [False, True],
               'all': [False, 'act', True]}


def build_model(spec: str, size: Tuple[int, int], with_cp: Union[bool, str],
                peers: Dict[str, str]) -> nn.Module:
    family, arch = spec.split(':', 1)
    if with_cp == 'act' and family not in FAMILIES:
        raise SystemExit(f"{spec}: with_cp='act' (MLP activations recomputed) is this package's "
                         'option; other models take off / on')
    if spec in peers:
        module_name, function = peers[spec].split(':')
        return getattr(importlib.import_module(module_name), function)(arch, size)
    if family in FAMILIES:
        return build_backbone(family, arch, with_cp=with_cp)
    if family == 'mmseg-swin':
        from mmseg.models.backbones import SwinTransformer
        return SwinTransformer(**MMSEG_SWIN[arch], window_size=7, drop_path_rate=0., with_cp=with_cp)
    if family == 'timm-swin':
        import timm
        return timm.create_model(TIMM_SWIN[arch], pretrained=False, features_only=True,
                                 img_size=size, strict_img_size=False)
    raise SystemExit(f'unknown model family {family!r} in {spec!r}')


# --- measurements -------------------------------------------------------------------------------
def _rss_bytes(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f'{field} not in /proc/self/status')


def _reset_peak_rss() -> None:
    with open('/proc/self/clear_refs', 'w') as f:  # "5" resets VmHWM (Linux >= 4.0)
        f.write('5')


#: ``--clock`` choices: wall-clock time, or this process's CPU time (user + system, all threads).
CLOCKS = {'wall': time.perf_counter, 'process': time.process_time}


def _timed(fn: Callable[[], Any], runs: int, warmup: int, cuda: bool,
           clock: str = 'wall') -> float:
    timer = CLOCKS[clock]
    times = []
    for i in range(warmup + runs):
        if cuda:
            torch.cuda.synchronize()
        start = timer()
        fn()
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(timer() - start)
    return statistics.median(times)


def build_step(case: Dict[str, Any]) -> Callable[[], None]:
    """One step of ``case``'s model (compiled with ``case['compile']``) in its ``mode``:
    ``forward`` in eval mode without gradients, ``train`` forward + backward (then the
    gradients are dropped). Sets the thread count and the seed; used by :func:`worker` and
    :mod:`.profile`."""
    torch.set_num_threads(case['threads'])
    torch.manual_seed(0)
    device = torch.device(case['device'])
    size = tuple(case['size'])
    model = build_model(case['model'], size, case['with_cp'], case['peers']).to(device)
    module = model
    if case.get('compile'):
        model = torch.compile(model, **case['compile'])
    x = torch.randn(case['batch'], 3, *size, device=device)
    dtype = {'fp32': None, 'bf16': torch.bfloat16}[case['dtype']]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else None

    def forward():
        if autocast:
            with autocast():
                return model(x)
        return model(x)

    if case['mode'] == 'forward':
        module.eval()

        def step():
            with torch.no_grad():
                forward()
    else:
        module.train()

        def step():
            outs = forward()
            sum(o.float().mean() for o in outs).backward()
            module.zero_grad(set_to_none=True)

    return step


def worker(case: Dict[str, Any]) -> Dict[str, Any]:
    """One case in this process: build (and compile), time, measure memory."""
    cuda = case['device'].startswith('cuda')
    step = build_step(case)
    result = {}
    warmup = case['warmup']
    if case.get('compile'):
        # the first step compiles: timed alone; then the warm-up, and the measurement after it
        result['compile_seconds'] = _timed(step, runs=1, warmup=0, cuda=cuda)
        _timed(step, runs=1, warmup=max(warmup - 1, 0), cuda=cuda)
        warmup = 0
    if cuda:
        torch.cuda.synchronize()
        rest = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        # reset first: the high-water mark since the reset is >= any RSS read after it, so the
        # peak above the resting size is never negative (read before, a freed page made it so)
        _reset_peak_rss()
        rest = _rss_bytes('VmRSS:')
    seconds = _timed(step, case['runs'], warmup, cuda, case.get('clock', 'wall'))
    peak = (torch.cuda.max_memory_allocated() if cuda else _rss_bytes('VmHWM:')) - rest
    return dict(result, seconds=seconds, peak_mb=peak / 2**20)


def interleaved_worker(cases: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Several cases (models) in this process, one step of each in turn, the order reversed every
    other iteration, so that they see the same machine load: per case the median time and the
    median of its per-iteration time ratios to the first case's. No peak memory (the models
    share the process); compiled cases compile first (``compile_seconds``)."""
    cuda = cases[0]['device'].startswith('cuda')
    steps = [build_step(case) for case in cases]
    results: List[Dict[str, Any]] = [{} for _ in cases]
    for case, step, result in zip(cases, steps, results):
        if case.get('compile'):
            result['compile_seconds'] = _timed(step, runs=1, warmup=0, cuda=cuda)
    warmup, runs = cases[0]['warmup'], cases[0]['runs']
    times: List[List[float]] = [[] for _ in cases]
    for i in range(warmup + runs):
        order = range(len(cases)) if i % 2 == 0 else reversed(range(len(cases)))
        for j in order:
            seconds = _timed(steps[j], runs=1, warmup=0, cuda=cuda,
                             clock=cases[j].get('clock', 'wall'))
            if i >= warmup:
                times[j].append(seconds)
    return [dict(result, seconds=statistics.median(t), step_seconds=t)
            for result, t in zip(results, times)]


def paired_ratio(runs: List[Dict[str, Any]], reference: List[Dict[str, Any]]) -> Optional[float]:
    """The median over the rounds of the median per-step time ratio ``runs / reference``, for two
    cases that ran interleaved in one process each round (``step_seconds``); None if they did not."""
    per_round = [statistics.median(a / b for a, b in zip(r['step_seconds'], q['step_seconds']))
                 for r, q in zip(runs, reference) if 'step_seconds' in r and 'step_seconds' in q]
    return statistics.median(per_round) if per_round else None


def run_worker(case: Dict[str, Any]) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
    """What a case's fresh process runs: :func:`interleaved_worker` for a group (``cases``),
    else :func:`worker`."""
    return interleaved_worker(case['cases']) if 'cases' in case else worker(case)


def matmul_peak_gflops(device: str, dtype: str, threads: int, n: int = 2048,
                       clock: str = 'wall') -> float:
    torch.set_num_threads(threads)
    torch_dtype = torch.bfloat16 if dtype == 'bf16' else torch.float32
    a = torch.randn(n, n, device=device, dtype=torch_dtype)
    b = torch.randn(n, n, device=device, dtype=torch_dtype)
    seconds = _timed(lambda: torch.mm(a, b), runs=5, warmup=2, cuda=device.startswith('cuda'),
                     clock=clock)
    return 2 * n**3 / seconds / 1e9


def static_stats(spec: str, size: Tuple[int, int], peers: Dict[str, str]) -> Dict[str, Any]:
    model = build_model(spec, size, False, peers)
    model.eval()  # some peers' train() returns None, so no chaining
    stats = dict(params_m=count_params(model) / 1e6)
    try:
        with torch.no_grad():
            stats['gmacs'] = count_flops(model, (torch.randn(1, 3, *size), ))[0] / 1e9
    except Exception as err:  # noqa: BLE001  (a peer jit cannot trace)
        stats['gmacs'] = None
        stats['flops_error'] = f'{type(err).__name__}: {err}'
    return stats


def run_case(case: Dict[str, Any], module: str = __name__) -> Dict[str, Any]:
    """``case`` in a fresh process (``python -m module CASE_JSON``, whose last stdout line is the
    result as JSON), or ``dict(error=...)`` with the end of its output."""
    proc = subprocess.run([sys.executable, '-m', module, json.dumps(case)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return dict(error=' | '.join(tail) or f'exit {proc.returncode}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def benchmark(models: Sequence[str] = DEFAULT_MODELS,
              sizes: Sequence[Tuple[int, int]] = ((512, 512), (800, 1333)),
              modes: Sequence[str] = ('forward', 'train'), batch: int = 1, runs: int = 5,
              rounds: int = 1, warmup: int = 1, threads: int = 2, device: str = 'cpu',
              dtype: str = 'fp32', with_cp: Sequence[str] = ('off', ),
              compile_backend: Optional[str] = None, compile_mode: Optional[str] = None,
              compile_dynamic: bool = False, peer: Sequence[str] = (), no_flops: bool = False,
              json_out: Optional[str] = None, interleave: bool = False,
              clock: str = 'wall') -> Dict[str, Any]:
    """Measure every (size, model, mode, with_cp, eager / compiled) case, ``rounds`` times,
    interleaved; progress to stderr, the table to stdout, the report as JSON to ``json_out``.

    ``peer``: ``NAME:ARCH=MODULE:FUNC`` builders of other models; ``with_cp``: words of
    :data:`CP_SETTINGS`; ``compile_backend``: also run every case through ``torch.compile``;
    ``interleave``: the models of each (size, mode, with_cp), eager and compiled, run in one
    process, a step of each in turn (:func:`interleaved_worker`): the paired ratios are per
    iteration, robust to a changing load, and peak memory is not measured; ``clock``:
    ``'process'`` times this process's CPU time instead of the wall clock (with one thread, the
    work done, nearly blind to other jobs on the machine; with more, it counts idle spinning
    threads too)."""
    peers = dict(p.split('=', 1) for p in peer)
    models = list(models) + [p for p in peers if p not in models]
    known = set(FAMILIES) | set(PEER_FAMILIES)
    bad = [m for m in models if m not in peers and (':' not in m or m.split(':')[0] not in known)]
    if bad:
        raise SystemExit(f'unknown model family in {bad}; use family:arch with a family of '
                         f'{sorted(known)}, or --peer NAME:ARCH=MODULE:FUNC')
    cp_settings = list(dict.fromkeys(v for word in with_cp for v in CP_SETTINGS[word]))
    compile_options = [None]
    if compile_backend:
        compile_options.append(compile_kwargs(dict(backend=compile_backend, mode=compile_mode,
                                                   dynamic=True if compile_dynamic else None)))
    stats = {(spec, size): {} if no_flops else static_stats(spec, size, peers)
             for size in sizes for spec in models}
    cases = [dict(model=spec, size=size, mode=mode, with_cp=with_cp, compile=compile_cfg,
                  batch=batch, runs=runs, warmup=warmup, threads=threads,
                  device=device, dtype=dtype, peers=peers, clock=clock)
             for size in sizes for spec in models for mode in modes
             for with_cp in (cp_settings if mode == 'train' else [False])
             for compile_cfg in compile_options]
    # what one process runs: one case, or with interleave the models of one setting, eager and
    # compiled together (so that compiled / eager is paired by step as well)
    groups: Dict[Tuple[Any, ...], List[int]] = {}
    for i, case in enumerate(cases):
        key = (tuple(case['size']), case['mode'], case['with_cp'])
        groups.setdefault(key if interleave else (i, ), []).append(i)
    units = list(groups.values())
    peaks: List[float] = []
    measured: List[List[Dict[str, Any]]] = [[] for _ in cases]
    for round_ in range(rounds):
        peaks.append(matmul_peak_gflops(device, dtype, threads, clock=clock))
        tag = f'[round {round_ + 1}/{rounds}]'
        print(f'{tag} matmul peak {peaks[-1]:.1f} GFLOP/s', file=sys.stderr, flush=True)
        # every other round in reverse order, so that a drifting machine load evens out
        for unit in units if round_ % 2 == 0 else reversed(units):
            if interleave:
                got = run_case(dict(cases=[cases[i] for i in unit]))
                got = [got] * len(unit) if isinstance(got, dict) else got  # an error: all of them
            else:
                got = [run_case(cases[unit[0]])]
            for i, result in zip(unit, got):
                measured[i].append(result)
                print(f'{tag} {format_row(make_row(cases[i], {}, measured[i][-1:]))}',
                      file=sys.stderr, flush=True)
    peak = max(peaks)
    print(f'matmul peak ({dtype}, {threads} threads, {device}'
          f'{", best of the rounds" if rounds > 1 else ""}): {peak:.1f} GFLOP/s')
    results: List[Dict[str, Any]] = []
    results_runs: List[List[Dict[str, Any]]] = []  # each row's runs, by round
    for case, runs in zip(cases, measured):
        row = make_row(case, stats[(case['model'], case['size'])], runs)
        if interleave:
            row['interleaved'] = True
        if 'seconds' in row and row.get('gmacs') and case['mode'] == 'forward':
            row['gflops_per_s'] = 2 * row['gmacs'] * batch / row['seconds']
            row['fraction_of_matmul_peak'] = row['gflops_per_s'] / peak
        if row.get('compile') and 'seconds' in row:
            eager = next((j for j, r in enumerate(results) if _same_case(r, row, compiled=False)
                          and 'seconds' in r), None)
            if eager is not None:
                row['speedup_over_eager'] = results[eager]['seconds'] / row['seconds']
                paired = paired_ratio(results_runs[eager], runs)
                if paired is not None:
                    row['paired_speedup_over_eager'] = paired
        first = next((j for j, r in enumerate(results) if r['size'] == row['size']
                      and r['mode'] == row['mode'] and r['with_cp'] == row['with_cp']
                      and bool(r.get('compile')) == bool(row.get('compile'))
                      and 'seconds' in r), None)
        if first is not None and 'seconds' in row:
            row['relative_to'] = results[first]['model']
            row['time_ratio'] = row['seconds'] / results[first]['seconds']
            if interleave:  # per step, in each round's process
                paired = paired_ratio(runs, results_runs[first])
            else:
                by_round = [a / b for a, b in zip(row.get('seconds_per_round', []),
                                                  results[first].get('seconds_per_round', []))
                            if a and b]
                paired = statistics.median(by_round) if len(by_round) > 1 else None
            if paired is not None:
                row['paired_time_ratio'] = paired
        results.append(row)
        results_runs.append(runs)
        print(format_row(row), flush=True)
    report = dict(matmul_peak_gflops=peak, matmul_peak_per_round=peaks,
                  torch=torch.__version__, results=results)
    if json_out:
        with open(json_out, 'w') as f:
            json.dump(report, f, indent=1)
    return report


def _same_case(row: Dict[str, Any], other: Dict[str, Any], compiled: bool) -> bool:
    """Whether ``row`` is ``other``'s case (model, size, mode, with_cp), eager or compiled."""
    return (all(row[k] == other[k] for k in ('model', 'size', 'mode', 'with_cp'))
            and bool(row.get('compile')) == compiled)


def make_row(case: Dict[str, Any], stats: Dict[str, Any],
             runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One case's report: medians over the rounds that did not fail, or the first error."""
    row = dict(case, **stats)
    row.pop('peers')
    ok = [r for r in runs if 'error' not in r]
    if not ok:
        row['error'] = runs[0]['error']
        return row
    row['seconds'] = statistics.median(r['seconds'] for r in ok)
    if all('peak_mb' in r for r in ok):  # not measured when models are interleaved
        row['peak_mb'] = statistics.median(r['peak_mb'] for r in ok)
    if any('compile_seconds' in r for r in ok):
        row['compile_seconds'] = statistics.median(r['compile_seconds'] for r in ok)
    if len(runs) > 1:
        row['seconds_per_round'] = [r.get('seconds') for r in runs]
        if 'peak_mb' in row:
            row['peak_mb_per_round'] = [r.get('peak_mb') for r in runs]
    return row


def format_row(row: Dict[str, Any]) -> str:
    size = 'x'.join(map(str, row['size']))
    cp = {False: '', True: ' +cp', 'act': ' +cp=act'}[row['with_cp']]
    compiled = f" [{row['compile']['backend']}]" if row.get('compile') else ''
    name = f"{row['model']}{cp}{compiled}"
    head = f'{name:<30} {size:>9} {row["mode"]:<7}'
    if 'error' in row:
        return f'{head} ERROR {row["error"]}'
    parts = [f'{row["seconds"] * 1000:9.1f} ms']
    if 'peak_mb' in row:
        parts.append(f'peak {row["peak_mb"]:8.1f} MB')
    if row.get('params_m') is not None:
        parts.append(f'{row["params_m"]:6.2f} M params')
    if row.get('gmacs'):
        parts.append(f'{row["gmacs"]:7.2f} GMACs')
    if 'fraction_of_matmul_peak' in row:
        parts.append(f'{row["gflops_per_s"]:6.1f} GFLOP/s = {100 * row["fraction_of_matmul_peak"]:4.1f}% of peak')
    if 'speedup_over_eager' in row:
        paired = (f', paired by iteration: {row["paired_speedup_over_eager"]:.2f}x'
                  if 'paired_speedup_over_eager' in row else '')
        parts.append(f'{row["speedup_over_eager"]:.2f}x eager speed{paired} (compile '
                     f'{row["compile_seconds"]:.1f} s)')
    if 'time_ratio' in row:
        ratio = f'{row["time_ratio"]:.3f}x {row["relative_to"]}'
        if 'paired_time_ratio' in row:
            by = 'iteration' if row.get('interleaved') else 'round'
            ratio += f' (paired by {by}: {row["paired_time_ratio"]:.3f}x)'
        parts.append(ratio)
    return head + ' ' + ' | '.join(parts)


if __name__ == '__main__':  # one case in a fresh process (run_case); prints its JSON result
    print(json.dumps(run_worker(json.loads(sys.argv[1]))))
