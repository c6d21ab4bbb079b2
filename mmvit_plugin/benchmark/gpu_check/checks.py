"""The GPU check's steps: does this package train correctly, and how fast, on one CUDA GPU? Each
step is a function of the run's :class:`Settings` returning what it measured (JSON-ready) and
raising :class:`CheckFailed` when a check finds something wrong.

Steps (each is timed and recorded; a failing step does not stop the others):

``environment``
    torch, CUDA, cuDNN, the GPU, mmcv (and the CUDA its ops were compiled with), mmseg, mmdet.
``mmcv_ops``
    ``nms`` and ``roi_align`` (forward and backward) on the device against the CPU.
``ms_deform_attn``
    mmcv's multi-scale deformable attention (Mask2Former's pixel decoder, DINO) at Mask2Former's
    shapes for a 512x512 image (3 levels, 8 heads, 4 points): forward and the gradients of value,
    sampling locations and attention weights, on the device by the CUDA op
    (``MultiScaleDeformableAttnFunction``) and by mmcv's PyTorch path
    (``multi_scale_deformable_attn_pytorch``), each against the PyTorch path in float64 on the CPU
    (within :data:`MS_DEFORM_ATTN_TOLERANCE`); off CUDA only the PyTorch path runs.
``attn_switch``
    each backbone with ``attn_impl``: ``'explicit'`` and ``'sdpa'`` give the same outputs and
    gradients in fp32 (within :data:`ATTN_SWITCH_TOLERANCE`; the relative errors here are
    :func:`~mmvit_plugin.numerics.relative_error` ``'fro'``).
``backbones``
    Swin-T, CSWin-T, CvT-13, MPViT-S, forward + backward at 512x512 (batch 2) in fp32, bf16
    autocast and fp16 autocast with a GradScaler: outputs and gradients finite; bf16 and fp16
    outputs within :data:`OUTPUT_TOLERANCE` of fp32.
``memory``
    at 800x1333 (batch 1), per backbone and precision: peak memory and time of forward +
    backward, the host-device synchronisations during it (CUDA's sync debug mode; there should
    be none) and which attention kernels ran.
``multiscale``
    tools/benchmark_multiscale.py's measurement on the device: each backbone, forward + backward
    (fp32, batch 1) cycling through 8 padded sizes of mmdet's 3x pipeline; time right after a
    size change vs the same size again (fails above :data:`MULTISCALE_MAX_RATIO`, except with
    ``--quick``), and the tensors the model keeps.
``upernet`` / ``mask_rcnn``
    one training step (``model.train_step``) of configs/upernet_swin_t_ade20k.py (a random
    512x512 batch of 2 through mmseg's data preprocessor) and of configs/mask_rcnn_swin_t_coco_1x.py
    (two random 800x1333 images with random boxes and masks), backbone ``init_cfg`` None, SyncBN
    reverted to BN (one GPU, no process group), with the config's OptimWrapper and with an
    fp16 AmpOptimWrapper: finite losses, finite weights after the step.
``benchmark``
    ``tools/benchmark.py --device cuda --dtype bf16 --modes train`` with ours, mmseg's and timm's
    Swin-T side by side, CSWin-T, CvT-13, MPViT-S, at 512x512 and 800x1333: times, peaks, ratios
    to ours (each case a fresh process; ``--benchmark-modes forward train`` adds inference).

Expected time on one H200 (estimated): about 4 minutes, half of it the benchmark's subprocesses
(stopped after ``--benchmark-timeout``, 240 s). Writes ``OUT_DIR/gpu_check.json`` (everything)
and ``OUT_DIR/gpu_check.md`` (tables). Exit status 0 when every step passed, 1 when one failed, 2
when the check cannot run here (no CUDA). TF32 is off throughout (fp32 means fp32). ``--quick``
runs every step at tiny sizes (64x64 images, 128x128 for Mask R-CNN, a two-model benchmark) for
debugging this script without a GPU (``--device cpu``); there, the AmpOptimWrapper steps are
skipped (mmengine allows them on accelerators only) and memory and synchronisations are not
measured.
"""
import contextlib
import copy
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmvit_plugin.apis.config import load_config
from mmvit_plugin.apis.runner import build_model
from mmvit_plugin.models.families import backbone_class, build_backbone
from mmvit_plugin.numerics import relative_error
from mmvit_plugin.testing import random_boxes, random_det_batch, random_seg_batch
from .. import REPO_ROOT

Size = Tuple[int, int]  # (height, width)

#: (registry name, arch) of the backbones checked.
BACKBONES = (('Swin', 'tiny'), ('CSWin', 'tiny'), ('CvT', '13'), ('MPViT', 'small'))
PRECISIONS = ('fp32', 'bf16', 'fp16-amp')
#: Largest relative error of each output level against fp32 (Frobenius norm of the difference
#: over that of the fp32 output), random weights, training mode. MPViT's conv path (stem,
#: chained patch embeddings, aggregation: some 20 conv-BN layers without residuals) compounds
#: rounding more than the others. Measured on CPU (batch 2, 224x224 and 64x64): Swin-T, CSWin-T,
#: CvT-13 <= 1.7e-3 (fp16) and 1.4e-2 (bf16); MPViT-S <= 7.3e-3 and 4.9e-2.
OUTPUT_TOLERANCE = {
    'default': {'bf16': 6e-2, 'fp16-amp': 1e-2},
    'MPViT': {'bf16': 2e-1, 'fp16-amp': 3e-2},
}
#: 'explicit' vs 'sdpa' attention in fp32: largest relative error of outputs and gradients.
ATTN_SWITCH_TOLERANCE = 1e-4
#: fp32 vs float64 reference, largest relative error (max norm) of the output and of each gradient
#: of multi-scale deformable attention. The CUDA op's backward accumulates with atomics (order
#: varies); measured on CPU (PyTorch path, fp32, 512x512 shapes): 1.4e-6 output, <= 1.9e-6
#: gradients (CUDA op: not yet run on a GPU).
MS_DEFORM_ATTN_TOLERANCE = 1e-4
#: A GradScaler starts at 2**16 and halves after a step with inf/NaN gradients; this many skipped
#: steps in a row (scale down to 2**10) means the fp16 gradients are not finite at any usable scale.
MAX_SKIPPED_STEPS = 6
#: The multiscale step fails when the median over pairs of (time right after a size change) /
#: (time of the same size again) exceeds this: a size change must cost (next to) nothing.
MULTISCALE_MAX_RATIO = 1.05
BENCHMARK_MODELS = ('swin:tiny', 'mmseg-swin:tiny', 'timm-swin:tiny', 'cswin:tiny', 'cvt:13',
                    'mpvit:small')
UPERNET_CONFIG = REPO_ROOT / 'configs' / 'upernet_swin_t_ade20k.py'
MASK_RCNN_CONFIG = REPO_ROOT / 'configs' / 'mask_rcnn_swin_t_coco_1x.py'


class CheckFailed(AssertionError):
    """A check ran and found something wrong (not a crash of the check itself); ``result`` holds
    what the step measured before it failed, for the report."""

    def __init__(self, message: str, result: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.result = result


def require(condition: bool, message: str, result: Optional[Dict[str, Any]] = None) -> None:
    if not condition:
        raise CheckFailed(message, result)


@dataclass
class Settings:
    """Sizes and options of one run; :func:`make_settings` fills them for a full or quick run."""
    device: torch.device
    quick: bool
    backbones: Sequence[Tuple[str, Any]] = BACKBONES  # (registry name, arch name or dict)
    backbone_size: Size = (512, 512)
    backbone_batch: int = 2
    memory_size: Size = (800, 1333)
    memory_runs: int = 3
    upernet_size: Size = (512, 512)
    mask_rcnn_size: Size = (800, 1333)
    ms_deform_attn_size: Size = (512, 512)
    multiscale_scale: float = 1.0
    multiscale_sizes: int = 8
    multiscale_rounds: int = 2
    benchmark_models: Sequence[str] = BENCHMARK_MODELS
    benchmark_sizes: Sequence[str] = ('512x512', '800x1333')
    benchmark_modes: Sequence[str] = ('train', )
    benchmark_runs: int = 5
    benchmark_warmup: int = 2
    benchmark_timeout_s: int = 240
    benchmark_threads: int = 2

    @property
    def cuda(self) -> bool:
        return self.device.type == 'cuda'


def make_settings(device: torch.device, quick: bool, benchmark_timeout_s: int = 240,
                  benchmark_modes: Sequence[str] = ('train', )) -> Settings:
    if not quick:
        return Settings(device, quick, benchmark_timeout_s=benchmark_timeout_s,
                        benchmark_modes=tuple(benchmark_modes))
    return Settings(device, quick, backbone_size=(64, 64), memory_size=(64, 96), memory_runs=1,
                    multiscale_scale=0.125, multiscale_sizes=3, multiscale_rounds=1,
                    upernet_size=(64, 64), mask_rcnn_size=(128, 128),
                    ms_deform_attn_size=(64, 96),
                    benchmark_models=('swin:tiny', 'mmseg-swin:tiny'), benchmark_sizes=('64x64', ),
                    benchmark_modes=('forward', ), benchmark_runs=1, benchmark_warmup=0,
                    benchmark_timeout_s=benchmark_timeout_s, benchmark_threads=1)


# --- helpers ------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of a precision (``'fp32'``: none)."""
    if precision == 'fp32':
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == 'bf16' else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def output_weights(outs: Sequence[torch.Tensor], seed: int = 1) -> List[torch.Tensor]:
    """Fixed random weights for a loss over every output element (the same in every precision;
    a plain mean of a LayerNorm output would have no gradient)."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=generator).to(o.device) for o in outs]


def weighted_loss(outs: Sequence[torch.Tensor], weights: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((o.float() * w).mean() for o, w in zip(outs, weights))


def gradients(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.detach().flatten().float() for p in model.parameters()
                      if p.grad is not None])


def train_backbone(model: nn.Module, images: torch.Tensor, precision: str,
                   weights: Optional[List[torch.Tensor]] = None) -> Dict[str, Any]:
    """One forward + backward in a precision; for ``'fp16-amp'`` through a GradScaler, retrying
    (as training would) while it finds inf/NaN gradients and lowers its scale.

    Returns the outputs (detached), the flat gradients, the loss weights and, for fp16, the
    skipped steps and the final scale. Raises :class:`CheckFailed` for non-finite values."""
    device = images.device
    scaler = torch.amp.GradScaler(device.type) if precision == 'fp16-amp' else None
    # lr 0: the scaler's step (which skips on inf) runs as in training, the weights stay put
    optimizer = torch.optim.SGD(model.parameters(), lr=0.) if scaler else None
    skipped = 0
    while True:
        model.zero_grad(set_to_none=True)
        with autocast(device, precision):
            outs = model(images)
        require(all(torch.isfinite(o).all() for o in outs), f'{precision}: non-finite outputs')
        weights = weights if weights is not None else output_weights(outs)
        loss = weighted_loss(outs, weights)
        if scaler is None:
            loss.backward()
            break
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        finite = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        scale = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        if finite:
            break
        skipped += 1
        require(skipped < MAX_SKIPPED_STEPS, f'fp16: gradients not finite at any loss scale '
                f'down to {scale:g} ({skipped} skipped steps)')
    grads = gradients(model)
    require(bool(torch.isfinite(grads).all()), f'{precision}: non-finite gradients')
    result = dict(outs=[o.detach().float() for o in outs], grads=grads, weights=weights)
    if scaler is not None:
        result.update(skipped_steps=skipped, loss_scale=scale)
    return result


# --- steps --------------------------------------------------------------------------------------
def step_environment(settings: Settings) -> Dict[str, Any]:
    import mmcv
    import mmdet
    import mmengine
    import mmseg
    from mmcv.ops import get_compiling_cuda_version
    import mmvit_plugin
    info: Dict[str, Any] = dict(
        python=platform.python_version(), torch=torch.__version__, torch_cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        mmengine=mmengine.__version__, mmcv=mmcv.__version__,
        mmcv_ops_cuda=get_compiling_cuda_version(), mmseg=mmseg.__version__,
        mmdet=mmdet.__version__, mmvit_plugin=mmvit_plugin.__version__,
        device=str(settings.device), quick=settings.quick, commit=git_commit())
    if settings.cuda:
        props = torch.cuda.get_device_properties(settings.device)
        info.update(gpu=props.name, capability=f'{props.major}.{props.minor}',
                    gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    bf16_supported=torch.cuda.is_bf16_supported())
        require(info['mmcv_ops_cuda'] != 'not available',
                'mmcv was built without its CUDA ops (get_compiling_cuda_version() says "not '
                'available"): rebuild it on this machine (make install compiles them where a GPU '
                'is visible; FORCE_CUDA=1 forces it)')
    else:
        info['cpu'] = platform.processor() or platform.machine()
    return info


def git_commit() -> Optional[str]:
    try:
        proc = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO_ROOT, text=True,
                              capture_output=True, timeout=10)
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=REPO_ROOT, text=True, capture_output=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() + (' (modified)' if dirty else '') if proc.returncode == 0 else None


def step_mmcv_ops(settings: Settings) -> Dict[str, Any]:
    from mmcv.ops import nms, roi_align
    device = settings.device
    generator = torch.Generator().manual_seed(0)
    boxes = random_boxes(1000, 512, 512, generator, min_side=8.)
    scores = torch.rand(1000, generator=generator)
    keep_cpu = nms(boxes, scores, 0.5)[1]
    keep_dev = nms(boxes.to(device), scores.to(device), 0.5)[1].cpu()
    require(keep_dev.tolist() == keep_cpu.tolist(),
            f'nms on {device} keeps {len(keep_dev)} boxes, on the CPU {len(keep_cpu)}; first '
            f'differences: {sorted(set(keep_dev.tolist()) ^ set(keep_cpu.tolist()))[:10]}')

    feats = torch.randn(2, 16, 64, 64, generator=generator)
    rois = torch.cat([torch.randint(0, 2, (100, 1), generator=generator).float(),
                      random_boxes(100, 256, 256, generator)], 1)  # on a stride-4 map
    results = dict(nms_kept=len(keep_cpu))
    for sampling_ratio in (0, 2):
        outs, grads = [], []
        for dev in (torch.device('cpu'), device):
            f = feats.to(dev, copy=True).requires_grad_()  # a fresh leaf on each device
            out = roi_align(f, rois.to(dev), (7, 7), 0.25, sampling_ratio, 'avg', True)
            out.backward(torch.ones_like(out))
            outs.append(out.detach().cpu())
            grads.append(f.grad.detach().cpu())
        out_error = (outs[1] - outs[0]).abs().max().item()
        grad_error = (grads[1] - grads[0]).abs().max().item()
        require(out_error < 1e-4 and grad_error < 1e-3,
                f'roi_align (sampling_ratio={sampling_ratio}) on {device} differs from the CPU: '
                f'outputs by {out_error:.3g}, feature gradients by {grad_error:.3g}')
        results[f'roi_align_sr{sampling_ratio}_max_abs_diff'] = dict(output=out_error,
                                                                    grad=grad_error)
    return results


def ms_deform_attn_inputs(size: Size, generator: torch.Generator, batch: int = 2,
                          num_heads: int = 8, head_dims: int = 32, num_points: int = 4
                          ) -> Dict[str, torch.Tensor]:
    """Random float64 inputs of multi-scale deformable attention as Mask2Former's pixel decoder
    gives them for an image of ``size``: levels at strides 8, 16, 32, every pixel a query, sampling
    locations around each query's own position (some beyond the border, where sampling reads
    zeros), softmax attention weights."""
    shapes = torch.tensor([[-(-size[0] // s), -(-size[1] // s)] for s in (8, 16, 32)])
    num_keys = int(shapes.prod(1).sum())
    level_start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    value = torch.randn(batch, num_keys, num_heads, head_dims, generator=generator,
                        dtype=torch.float64)
    centres = torch.rand(batch, num_keys, 1, 1, 1, 2, generator=generator, dtype=torch.float64)
    offsets = 0.1 * torch.randn(batch, num_keys, num_heads, len(shapes), num_points, 2,
                                generator=generator, dtype=torch.float64)
    weights = torch.randn(batch, num_keys, num_heads, len(shapes) * num_points,
                          generator=generator, dtype=torch.float64).softmax(-1)
    # Bilinear sampling's gradient jumps where a location crosses a pixel centre: keep every
    # location at least 1 % of a pixel away from one, so that fp32 rounding cannot move it across.
    extent = shapes.flip(1).to(torch.float64).view(1, 1, 1, -1, 1, 2)  # (W, H) per level
    pixels = (centres + offsets) * extent - 0.5
    pixels = pixels.floor() + (pixels - pixels.floor()).clamp(0.01, 0.99)
    # inputs exactly representable in fp32, so every path starts from the same numbers
    return {k: (v.float().double() if v.is_floating_point() else v) for k, v in dict(
        value=value, shapes=shapes, level_start=level_start, locations=(pixels + 0.5) / extent,
        weights=weights.view(batch, num_keys, num_heads, len(shapes), num_points)).items()}


def ms_deform_attn_paths(device: torch.device) -> Dict[str, Callable[..., torch.Tensor]]:
    """The implementations of multi-scale deformable attention that run on ``device``, by name:
    mmcv's PyTorch path everywhere, its CUDA op on a GPU (as ``MultiScaleDeformableAttention``
    picks it for CUDA tensors)."""
    from mmcv.ops.multi_scale_deform_attn import (MultiScaleDeformableAttnFunction,
                                                  multi_scale_deformable_attn_pytorch)
    paths: Dict[str, Callable[..., torch.Tensor]] = {
        'pytorch': lambda value, shapes, level_start, locations, weights:
            multi_scale_deformable_attn_pytorch(value, shapes, locations, weights)}
    if device.type == 'cuda':
        paths['cuda_op'] = lambda value, shapes, level_start, locations, weights: \
            MultiScaleDeformableAttnFunction.apply(value, shapes, level_start, locations,
                                                   weights, 64)
    return paths


def ms_deform_attn_run(path: Callable[..., torch.Tensor], inputs: Dict[str, torch.Tensor],
                       device: torch.device, dtype: torch.dtype,
                       grad_out: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Output and gradients (value, sampling locations, attention weights) of one path, on the
    CPU in float64 for comparison."""
    leaves = {k: inputs[k].detach().to(device, dtype, copy=True).requires_grad_()
              for k in ('value', 'locations', 'weights')}
    out = path(leaves['value'], inputs['shapes'].to(device), inputs['level_start'].to(device),
               leaves['locations'], leaves['weights'])
    out.backward(grad_out.to(device, dtype))
    result = {'output': out.detach()}
    result.update({f'grad_{k}': v.grad for k, v in leaves.items()})
    return {k: v.to('cpu', torch.float64) for k, v in result.items()}


def step_ms_deform_attn(settings: Settings) -> Dict[str, Any]:
    """mmcv's multi-scale deformable attention on the device (CUDA op and PyTorch path) against
    the PyTorch path in float64 on the CPU: output and the three gradients."""
    generator = torch.Generator().manual_seed(0)
    inputs = ms_deform_attn_inputs(settings.ms_deform_attn_size, generator)
    batch, num_keys, num_heads, head_dims = inputs['value'].shape
    grad_out = torch.randn(batch, num_keys, num_heads * head_dims, generator=generator,
                           dtype=torch.float64)
    paths = ms_deform_attn_paths(settings.device)
    reference = ms_deform_attn_run(paths['pytorch'], inputs, torch.device('cpu'), torch.float64,
                                   grad_out)
    results: Dict[str, Any] = dict(size=list(settings.ms_deform_attn_size),
                                   levels=inputs['shapes'].tolist(), queries=num_keys,
                                   tolerance=MS_DEFORM_ATTN_TOLERANCE)
    failures = []
    for name, path in paths.items():
        run = ms_deform_attn_run(path, inputs, settings.device, torch.float32, grad_out)
        errors = {k: relative_error(run[k], reference[k]) for k in reference}
        results[name] = errors
        bad = {k: v for k, v in errors.items() if not v < MS_DEFORM_ATTN_TOLERANCE}
        if bad:
            failures.append(f'{name} on {settings.device}: ' + ', '.join(
                f'{k} {v:.3g}' for k, v in bad.items()))
    require(not failures, 'multi-scale deformable attention (fp32) differs from the float64 '
            f'reference beyond {MS_DEFORM_ATTN_TOLERANCE:g}: ' + '; '.join(failures), results)
    return results


def step_attn_switch(settings: Settings) -> Dict[str, Any]:
    """'explicit' vs 'sdpa' for every backbone that has the switch, fp32, training mode."""
    device = settings.device
    results: Dict[str, Any] = {}
    failures = []
    images = torch.randn(settings.backbone_batch, 3, *settings.backbone_size).to(device)
    for name, arch in settings.backbones:
        if 'attn_impl' not in inspect.signature(backbone_class(name).__init__).parameters:
            results[name] = 'no attn_impl switch'
            continue
        torch.manual_seed(0)
        explicit = build_backbone(name, arch, attn_impl='explicit').to(device).train()
        sdpa = build_backbone(name, arch, attn_impl='sdpa').to(device).train()
        sdpa.load_state_dict(explicit.state_dict())
        ref = train_backbone(explicit, images, 'fp32')
        out = train_backbone(sdpa, images, 'fp32', ref['weights'])
        out_error = max(relative_error(o, r, 'fro') for o, r in zip(out['outs'], ref['outs']))
        grad_error = relative_error(out['grads'], ref['grads'], 'fro')
        results[name] = dict(output_error=out_error, grad_error=grad_error)
        if max(out_error, grad_error) >= ATTN_SWITCH_TOLERANCE:
            failures.append(f'{name}: outputs {out_error:.3g}, gradients {grad_error:.3g}')
    require(not failures, 'explicit vs sdpa attention differ beyond '
            f'{ATTN_SWITCH_TOLERANCE:g}: ' + '; '.join(failures), results)
    return results


def step_backbones(settings: Settings) -> Dict[str, Any]:
    """Each backbone in fp32, bf16 and fp16-AMP: finite, and low precision close to fp32."""
    device = settings.device
    results: Dict[str, Any] = {}
    failures = []
    torch.manual_seed(0)
    images = torch.randn(settings.backbone_batch, 3, *settings.backbone_size).to(device)
    for name, arch in settings.backbones:
        torch.manual_seed(0)
        model = build_backbone(name, arch).to(device).train()
        tolerance = OUTPUT_TOLERANCE.get(name, OUTPUT_TOLERANCE['default'])
        reference = None
        for precision in PRECISIONS:
            row: Dict[str, Any] = {}
            results[f'{name}/{precision}'] = row
            try:
                synchronize(device)
                start = time.perf_counter()
                run = train_backbone(model, images, precision,
                                     reference['weights'] if reference else None)
                synchronize(device)
                row['seconds'] = time.perf_counter() - start
                row['finite'] = True
                if precision == 'fp32':
                    reference = run
                    continue
                row.update({k: run[k] for k in ('skipped_steps', 'loss_scale') if k in run})
                if reference is None:
                    raise CheckFailed('no fp32 reference to compare with')
                errors = [relative_error(o, r, 'fro')
                          for o, r in zip(run['outs'], reference['outs'])]
                row.update(output_errors=errors,
                           grad_error=relative_error(run['grads'], reference['grads'], 'fro'),
                           tolerance=tolerance[precision])
                require(max(errors) < tolerance[precision],
                        f'output error {max(errors):.3g} >= {tolerance[precision]:g} vs fp32')
            except CheckFailed as err:
                row.update(finite=row.get('finite', False), error=str(err))
                failures.append(f'{name} {precision}: {err}')
    require(not failures, '; '.join(failures), results)
    return results


@contextlib.contextmanager
def count_syncs(device: torch.device):
    """Collects CUDA's warnings about host-device synchronisations in the block (a list of
    messages; empty off CUDA, where there is nothing to synchronise)."""
    messages: List[str] = []
    if device.type != 'cuda':
        yield messages
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            yield messages
        finally:
            torch.cuda.set_sync_debug_mode('default')
    messages.extend(str(w.message).splitlines()[0] for w in caught
                    if 'synchroniz' in str(w.message).lower())


def attention_kernels(model: nn.Module, images: torch.Tensor, precision: str) -> List[str]:
    """Names of what ran in one forward pass that looks like attention or softmax: the CUDA
    kernels on a GPU (which fused kernel SDPA picked), the aten operators on CPU."""
    from torch.profiler import ProfilerActivity, profile
    cuda = images.device.type == 'cuda'
    activity = ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU
    with torch.no_grad(), autocast(images.device, precision), \
            profile(activities=[activity]) as prof:
        model(images)
        synchronize(images.device)
    keys = {event.key for event in prof.key_averages()
            if not cuda or event.device_type == torch.autograd.DeviceType.CUDA}
    found = sorted(k for k in keys if any(s in k.lower() for s in
                                          ('attention', 'fmha', 'flash', 'softmax', 'efficient')))
    return [k if len(k) <= 90 else k[:87] + '...' for k in found][:6]


def step_memory(settings: Settings) -> Dict[str, Any]:
    """Peak memory, time, synchronisations and attention kernels of forward + backward."""
    device = settings.device
    results: Dict[str, Any] = {}
    failures = []
    images = torch.randn(1, 3, *settings.memory_size).to(device)
    for name, arch in settings.backbones:
        torch.manual_seed(0)
        model = build_backbone(name, arch).to(device).train()
        for precision in PRECISIONS:
            row: Dict[str, Any] = {}
            results[f'{name}/{precision}'] = row
            try:
                weights = train_backbone(model, images, precision)['weights']  # warm-up
                model.zero_grad(set_to_none=True)
                scale = 2.**16 if precision == 'fp16-amp' else 1.  # as a GradScaler's first step

                def step() -> None:
                    with autocast(device, precision):
                        outs = model(images)
                    (weighted_loss(outs, weights) * scale).backward()
                    model.zero_grad(set_to_none=True)

                synchronize(device)
                if settings.cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                    rest = torch.cuda.memory_allocated(device)
                times = []
                for _ in range(settings.memory_runs):
                    synchronize(device)
                    start = time.perf_counter()
                    step()
                    synchronize(device)
                    times.append(time.perf_counter() - start)
                row['ms'] = 1000 * statistics.median(times)
                # (fp16 on CPU, emulated, is some 20x slower under the profiler: left out)
                if settings.cuda or precision != 'fp16-amp':
                    row['attention_kernels'] = attention_kernels(model, images, precision)
                if settings.cuda:
                    row['peak_mb'] = (torch.cuda.max_memory_allocated(device) - rest) / 2**20
                    with count_syncs(device) as syncs:
                        step()
                    row['syncs'] = len(syncs)
                    row['sync_messages'] = sorted(set(syncs))[:3]
                    require(not syncs, f'{len(syncs)} host-device synchronisation(s) in forward + '
                            f'backward: {row["sync_messages"]}')
            except CheckFailed as err:
                row['error'] = str(err)
                failures.append(f'{name} {precision}: {err}')
        del model
        if settings.cuda:
            torch.cuda.empty_cache()
    require(not failures, '; '.join(failures), results)
    return results


def step_multiscale(settings: Settings) -> Dict[str, Any]:
    """tools/benchmark_multiscale.py's measurement on the device: forward + backward cycling
    through sizes of mmdet's 3x pipeline, right after a size change vs the same size again."""
    from mmvit_plugin.benchmark import multiscale
    sizes, _ = multiscale.scaled_pipeline_sizes(scale=settings.multiscale_scale,
                                                num_sizes=settings.multiscale_sizes)
    results: Dict[str, Any] = dict(sizes=['x'.join(map(str, s)) for s in sizes],
                                   rounds=settings.multiscale_rounds)
    failures = []
    for name, arch in settings.backbones:
        torch.manual_seed(0)
        model = build_backbone(name, arch).to(settings.device)
        measured = multiscale.measure(model, sizes, settings.multiscale_rounds, 1, settings.device)
        # on CUDA the wall clock (synchronised); on CPU the process's CPU time, which others'
        # jobs on the machine do not inflate
        summary = measured['cpu_time'] or measured
        row = dict(clock='process CPU time' if measured['cpu_time'] else 'wall clock',
                   ms_after_size_change=1000 * summary['seconds_after_size_change'],
                   ms_same_size=1000 * summary['seconds_same_size'], ratio=summary['ratio'],
                   paired_ratio_median=summary['paired_ratio_median'],
                   paired_ratio_quartiles=summary['paired_ratio_quartiles'],
                   held_tensor_mb_growth=(measured['held_tensor_mb_after']
                                          - measured['held_tensor_mb_before']))
        results[name] = row
        # --quick (one round at tiny sizes) is a dry run: reported, not judged
        if row['paired_ratio_median'] > MULTISCALE_MAX_RATIO and not settings.quick:
            failures.append(f"{name}: a size change costs {row['paired_ratio_median']:.3f}x")
        del model
        if settings.cuda:
            torch.cuda.empty_cache()
    require(not failures, f'median ratio above {MULTISCALE_MAX_RATIO}: ' + '; '.join(failures),
            results)
    return results


def train_step(model: nn.Module, cfg: Any, data: Dict[str, Any], amp: bool) -> Dict[str, float]:
    """``model.train_step`` with the config's optimizer wrapper (or an fp16 AmpOptimWrapper);
    checks that the losses and the updated weights are finite."""
    from mmengine.optim import build_optim_wrapper
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if amp:
        optim_cfg.update(type='AmpOptimWrapper', dtype='float16')
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    log_vars = model.train_step(data, optim_wrapper)
    losses = {k: float(v.detach() if isinstance(v, torch.Tensor) else v)
              for k, v in log_vars.items()}
    bad = {k: v for k, v in losses.items() if not torch.isfinite(torch.tensor(v))}
    require(not bad, f'non-finite losses: {bad}')
    require(all(torch.isfinite(p).all() for p in model.parameters()),
            'non-finite weights after the step')
    if amp:
        losses['loss_scale'] = float(optim_wrapper.loss_scaler.get_scale())
    return losses


def amp_variants(settings: Settings) -> List[bool]:
    return [False, True] if settings.cuda else [False]


def train_model(config: Path, device: torch.device,
                cfg_options: Optional[dict] = None) -> Tuple[Any, nn.Module]:
    """A config of this repository and its model with random weights (backbone ``init_cfg``
    None), SyncBN reverted to BN (one GPU, no process group), in training mode on ``device``."""
    cfg = load_config(str(config), cfg_options)  # imports mmvit_plugin (custom_imports)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    return cfg, model.to(device).train()


def train_steps(settings: Settings, config: Path, size: Size,
                batch: Callable[[Any, torch.Generator], Dict[str, Any]],
                cfg_options: Optional[dict] = None) -> Dict[str, Any]:
    """One ``train_step`` of the config's model on ``batch(cfg, generator)`` (a random batch of 2)
    with its OptimWrapper and, on a GPU, with an fp16 AmpOptimWrapper (a fresh model each)."""
    generator = torch.Generator().manual_seed(0)
    results: Dict[str, Any] = dict(size=list(size), batch=2)
    for amp in amp_variants(settings):
        cfg, model = train_model(config, settings.device, cfg_options)
        name = 'AmpOptimWrapper (fp16)' if amp else cfg.optim_wrapper.type
        results[name] = train_step(model, cfg, batch(cfg, generator), amp)
    if not settings.cuda:
        results['AmpOptimWrapper (fp16)'] = 'skipped: mmengine runs it on accelerators only'
    return results


def step_upernet(settings: Settings) -> Dict[str, Any]:
    size = settings.upernet_size

    def batch(cfg: Any, generator: torch.Generator) -> Dict[str, Any]:
        return random_seg_batch(size, 2, cfg.model.decode_head.num_classes, generator)

    return train_steps(settings, UPERNET_CONFIG, size, batch,
                       {'model.data_preprocessor.size': tuple(size)})


def step_mask_rcnn(settings: Settings) -> Dict[str, Any]:
    size = settings.mask_rcnn_size

    def batch(cfg: Any, generator: torch.Generator) -> Dict[str, Any]:
        return random_det_batch(size, 2, cfg.model.roi_head.bbox_head.num_classes, 8, generator)

    return train_steps(settings, MASK_RCNN_CONFIG, size, batch)


def benchmark_command(settings: Settings, json_path: str) -> List[str]:
    return [sys.executable, str(REPO_ROOT / 'tools' / 'benchmark.py'),
            '--device', str(settings.device), '--dtype', 'bf16',
            '--models', *settings.benchmark_models, '--sizes', *settings.benchmark_sizes,
            '--modes', *settings.benchmark_modes, '--runs', str(settings.benchmark_runs),
            '--warmup', str(settings.benchmark_warmup),
            '--threads', str(settings.benchmark_threads), '--no-flops', '--json', json_path]


def step_benchmark(settings: Settings) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        json_path = os.path.join(tmp, 'benchmark.json')
        command = benchmark_command(settings, json_path)
        try:
            proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT,
                                  timeout=settings.benchmark_timeout_s)
        except subprocess.TimeoutExpired as err:
            # the cases done so far are in its progress lines (stderr; bytes, whatever text=)
            progress = (err.stderr or b'').decode(errors='replace').strip().splitlines()
            raise CheckFailed(f'tools/benchmark.py did not finish in '
                              f'{settings.benchmark_timeout_s} s; last progress: '
                              + ' | '.join(progress[-3:]))
        require(proc.returncode == 0 and os.path.exists(json_path),
                f'tools/benchmark.py failed (exit {proc.returncode}): '
                + ' | '.join((proc.stderr or proc.stdout).strip().splitlines()[-5:]))
        with open(json_path) as f:
            report = json.load(f)
    rows = []
    for row in report['results']:
        size = row['size'] if isinstance(row['size'], str) else 'x'.join(map(str, row['size']))
        rows.append({k: row.get(k) for k in ('model', 'mode', 'seconds', 'peak_mb', 'time_ratio',
                                              'relative_to', 'error')} | dict(size=size))
    shown = ' '.join(command[1:]).replace(str(REPO_ROOT) + '/', '').replace(json_path, 'X')
    return dict(command=shown, matmul_peak_gflops=report.get('matmul_peak_gflops'), rows=rows)


STEPS: Dict[str, Callable[[Settings], Dict[str, Any]]] = {
    'environment': step_environment,
    'mmcv_ops': step_mmcv_ops,
    'ms_deform_attn': step_ms_deform_attn,
    'attn_switch': step_attn_switch,
    'backbones': step_backbones,
    'memory': step_memory,
    'multiscale': step_multiscale,
    'upernet': step_upernet,
    'mask_rcnn': step_mask_rcnn,
    'benchmark': step_benchmark,
}
