"""What a changing input size costs a backbone in multi-scale training.

The sizes are those of mmdet's 3x multi-scale pipeline (``configs/_base_/detr_aug.py``): an
image is resized, keeping its aspect ratio, to a short side in 480..800 (step 32) with the long
side at most 1333 (``mmcv.rescale_size``, as mmdet's ``Resize``), then padded to multiples of 32
(``DetDataPreprocessor(pad_size_divisor=32)``). For the image shapes given (COCO's common ones by
default) that makes a few dozen distinct padded sizes; ``--num-sizes`` of them, spread evenly
from the smallest to the largest area, are measured.

Every size first runs once (warm-up: whatever the model or the libraries build per size exists
afterwards, as in steady-state training). Then, in each round, every size runs twice in a row,
forward + backward: the first iteration follows another size (what a multi-scale pipeline does
nearly every iteration), the second the same size again (as if the size had not changed). Both
kinds of iteration cover the same sizes, interleaved in time, so a changing machine load hits
them alike; every other round goes through the sizes in reverse order. Reported: the mean time
per iteration of each kind, their ratio (1.00 = a size change costs nothing), the median and
quartiles of the per-size paired ratios, and the bytes of tensors the model holds before and
after (a per-size cache kept on the model shows up as growth). On CPU the same figures are also
given in process CPU time, which on a shared machine (others' jobs taking cores away) is far
steadier than wall-clock time, with one thread (the default: several threads spin while they
wait for each other, and that counts as CPU time too).

The model is one of this package's backbones (``family:arch``), in training mode with drop path
off (so that both iterations of a pair do the same work), in one process: per-size state must
survive between iterations to be seen.
"""
import json
import math
import statistics
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmvit_plugin.models.families import build_backbone

Size = Tuple[int, int]  # (height, width)

#: mmdet 3x multi-scale training (configs/_base_/detr_aug.py): short sides, long-side cap.
SHORT_SIDES = tuple(range(480, 801, 32))
MAX_LONG_SIDE = 1333
PAD_DIVISOR = 32
#: COCO's most common image shapes (height x width): 4:3 and 3:2, landscape and portrait, and
#: 16:9, whose long side reaches the 1333 cap.
DEFAULT_IMAGE_SHAPES = ((480, 640), (427, 640), (640, 480), (640, 427), (360, 640))
#: --quick: the pipeline scaled down 8x, 3 sizes, 1 round.
QUICK_SCALE = 0.125


def pipeline_sizes(image_shapes: Iterable[Size], short_sides: Sequence[int] = SHORT_SIDES,
                   max_long_side: int = MAX_LONG_SIDE, divisor: int = PAD_DIVISOR) -> List[Size]:
    """Distinct padded input sizes of mmdet's keep-ratio multi-scale resize, smallest area first.

    Each image shape is rescaled as ``mmcv.rescale_size((w, h), (max_long_side, short))`` (the
    largest size with short side <= ``short`` and long side <= ``max_long_side``, rounded half
    up) and padded up to multiples of ``divisor``.
    """
    from mmcv.image.geometric import rescale_size
    sizes = set()
    for height, width in image_shapes:
        for short in short_sides:
            new_w, new_h = rescale_size((width, height), (max_long_side, short))
            sizes.add((math.ceil(new_h / divisor) * divisor, math.ceil(new_w / divisor) * divisor))
    return sorted(sizes, key=lambda s: (s[0] * s[1], s))


def spread(items: Sequence[Any], count: int) -> List[Any]:
    """``count`` items evenly spread over ``items`` (first and last included); all if fewer."""
    if count >= len(items):
        return list(items)
    if count == 1:
        return [items[len(items) // 2]]
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def held_tensor_bytes(model: nn.Module) -> int:
    """Bytes of the distinct tensor storages a model's modules hold: parameters, buffers and any
    tensor kept in a module attribute, also inside dicts, lists and tuples (where caches live)."""
    seen: Dict[Tuple[str, int], int] = {}

    def visit(value: Any, depth: int) -> None:
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            seen[(str(value.device), storage.data_ptr())] = storage.nbytes()
        elif depth < 3 and isinstance(value, dict):
            for item in value.values():
                visit(item, depth + 1)
        elif depth < 3 and isinstance(value, (list, tuple)):
            for item in value:
                visit(item, depth + 1)

    for module in model.modules():
        for value in vars(module).values():
            visit(value, 0)
    return sum(seen.values())


def train_step(model: nn.Module, images: torch.Tensor) -> None:
    """Forward + backward with a loss that reaches every output element."""
    outs = model(images)
    sum(o.float().square().mean() for o in outs).backward()
    model.zero_grad(set_to_none=True)


def timed(fn: Callable[[], None], cuda: bool) -> Tuple[float, float]:
    """Wall-clock and process CPU seconds of ``fn()`` (CUDA work waited for)."""
    if cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def summarize(changed: Dict[Size, List[float]],
              repeated: Dict[Size, List[float]]) -> Dict[str, Any]:
    """Means of both kinds of iteration over all sizes and rounds, their ratio, and the median and
    quartiles of the ratios of the pairs (the same size, one right after the other)."""
    sizes = list(changed)
    mean_changed = statistics.fmean(t for s in sizes for t in changed[s])
    mean_repeated = statistics.fmean(t for s in sizes for t in repeated[s])
    paired = [a / b for s in sizes for a, b in zip(changed[s], repeated[s])]
    quartiles = statistics.quantiles(paired, n=4) if len(paired) > 1 else [paired[0]] * 3
    return dict(seconds_after_size_change=mean_changed, seconds_same_size=mean_repeated,
                ratio=mean_changed / mean_repeated, paired_ratio_median=statistics.median(paired),
                paired_ratio_quartiles=[quartiles[0], quartiles[2]],
                per_size={f'{h}x{w}': dict(after_size_change=changed[(h, w)],
                                           same_size=repeated[(h, w)]) for h, w in sizes})


def measure(model: nn.Module, sizes: Sequence[Size], rounds: int, batch: int,
            device: torch.device, log: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Warm up every size once, then per round every size twice in a row (see the module doc).

    Returns the wall-clock summary (:func:`summarize`) at the top level and, off CUDA, the same
    for the process's CPU time under ``'cpu_time'``: on a shared machine, CPU time with one
    thread counts this process's work only, not the time others' processes took from it."""
    cuda = device.type == 'cuda'
    inputs = {s: torch.randn(batch, 3, *s, device=device) for s in sizes}
    model.train()
    warmup = {s: timed(lambda: train_step(model, inputs[s]), cuda)[0] for s in sizes}
    held_before = held_tensor_bytes(model)
    wall: Tuple[Dict[Size, List[float]], ...] = ({s: [] for s in sizes}, {s: [] for s in sizes})
    cpu: Tuple[Dict[Size, List[float]], ...] = ({s: [] for s in sizes}, {s: [] for s in sizes})
    for round_ in range(rounds):
        # every other round in reverse, so that no size always follows the same one
        order = list(sizes) if round_ % 2 == 0 else list(reversed(sizes))
        for size in order:
            for kind in (0, 1):  # 0: after a size change, 1: the same size again
                seconds, cpu_seconds = timed(lambda: train_step(model, inputs[size]), cuda)
                wall[kind][size].append(seconds)
                cpu[kind][size].append(cpu_seconds)
            if log:
                log(f'[round {round_ + 1}/{rounds}] {size[0]}x{size[1]}: after a size change '
                    f'{wall[0][size][-1]:.3f} s (CPU {cpu[0][size][-1]:.3f} s), same size again '
                    f'{wall[1][size][-1]:.3f} s (CPU {cpu[1][size][-1]:.3f} s)')
    result = summarize(*wall)
    result.update(
        iterations_per_kind=rounds * len(sizes),
        warmup_seconds={f'{h}x{w}': t for (h, w), t in warmup.items()},
        cpu_time=None if cuda else summarize(*cpu),
        held_tensor_mb_before=held_before / 2**20,
        held_tensor_mb_after=held_tensor_bytes(model) / 2**20,
    )
    return result


def scaled_pipeline_sizes(image_shapes: Iterable[Size] = DEFAULT_IMAGE_SHAPES, scale: float = 1.,
                          num_sizes: int = 0) -> Tuple[List[Size], List[Size]]:
    """(the sizes to measure, all the pipeline's sizes): mmdet's 3x pipeline scaled by ``scale``
    (short sides and long-side cap), ``num_sizes`` of its sizes spread by area (0: all)."""
    short_sides = [max(1, round(s * scale)) for s in SHORT_SIDES]
    every_size = pipeline_sizes(image_shapes, short_sides, max(1, round(MAX_LONG_SIDE * scale)))
    return spread(every_size, num_sizes or len(every_size)), every_size


def format_summary(model: str, result: Dict[str, Any], sizes: Sequence[Size], every_size: int,
                   batch: int, threads: int, device: torch.device, rounds: int) -> str:
    """The printed report: both kinds of iteration, their ratio, the tensors the model keeps."""
    lines = [f'{model}, forward + backward, batch {batch}, {threads} thread(s), '
             f'{device.type}: {len(sizes)} sizes of mmdet\'s 3x pipeline (of {every_size}), '
             f'{rounds} round(s), {result["iterations_per_kind"]} iterations of each kind']
    for label, summary in (('wall clock', result), ('process CPU time', result['cpu_time'])):
        if summary is None:
            continue
        q1, q3 = summary['paired_ratio_quartiles']
        lines += [f'  {label}: after a size change {summary["seconds_after_size_change"]:.4f} s '
                  f'per iteration, same size again {summary["seconds_same_size"]:.4f} s',
                  f'    ratio: {summary["ratio"]:.4f} (of the means); pairs: median '
                  f'{summary["paired_ratio_median"]:.4f}, quartiles {q1:.4f}-{q3:.4f}']
    lines.append(f'  tensors held by the model: {result["held_tensor_mb_before"]:.1f} MB after the '
                 f'warm-up, {result["held_tensor_mb_after"]:.1f} MB at the end')
    return '\n'.join(lines)


def benchmark_multiscale(model: str = 'swin:tiny', num_sizes: int = 8, rounds: int = 3,
                         image_shapes: Sequence[Size] = DEFAULT_IMAGE_SHAPES, scale: float = 1.,
                         batch: int = 1, threads: int = 1, device: Any = 'cpu', seed: int = 0,
                         json_out: Optional[str] = None) -> Dict[str, Any]:
    """Measure ``model`` (``family:arch``) on ``num_sizes`` sizes of the (scaled) pipeline:
    progress to stderr, the summary to stdout, the report as JSON to ``json_out`` if given."""
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: CUDA is not available here')
    sizes, every_size = scaled_pipeline_sizes(image_shapes, scale, num_sizes)
    if len(sizes) < 2:
        raise SystemExit(f'the pipeline gives {len(sizes)} distinct size(s); a size change needs '
                         'at least 2 (more image shapes or a larger --scale)')
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    backbone = build_backbone(model).to(device)
    print(f'{model}: {len(sizes)} of the {len(every_size)} padded sizes of the pipeline: '
          + ' '.join(f'{h}x{w}' for h, w in sizes), file=sys.stderr, flush=True)
    result = measure(backbone, sizes, rounds, batch, device,
                     log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_summary(model, result, sizes, len(every_size), batch, threads, device, rounds),
          flush=True)
    report = dict(model=model, device=device.type, threads=threads, batch=batch, rounds=rounds,
                  scale=scale, image_shapes=[list(s) for s in image_shapes],
                  pipeline_sizes=[list(s) for s in every_size],
                  sizes=[list(s) for s in sizes], torch=torch.__version__, **result)
    if json_out:
        with open(json_out, 'w') as f:
            json.dump(report, f, indent=1)
    return report
