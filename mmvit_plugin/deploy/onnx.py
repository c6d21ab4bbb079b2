"""Export a backbone, a segmentor or a detector's backbone + neck to ONNX for any input size, and
check the file in onnxruntime against PyTorch before keeping it (tools/export_onnx.py).

What is exported (the graph takes the preprocessed image: normalised, RGB/BGR as the config's
``data_preprocessor`` makes it, padded as it pads; that step is not in the graph):

* segmentors (mmseg): the whole model in ``mode='tensor'``, backbone → neck → decode head, whose
  output is the logits at the decode head's resolution (1/4 of the input for UperNet), not resized;
* detectors (mmdet): the backbone and the neck (FPN levels). The RPN / RoI heads and their NMS are
  left to mmdeploy, which exports them with its own custom ops;
* ``--backbone-only``: the backbone's feature maps, for any config.

The batch, height and width are dynamic: the model is traced by ``torch.export`` (non-strict)
with symbolic sizes at ``--shape`` (batch 2: a size of 1 would be fixed, and so would a stage
with a single window or stripe, hence the default 512 x 512), converted by
``torch.onnx``'s dynamo exporter, and then the written file itself is run in onnxruntime at the
traced size and at ``--check-shapes`` (batch 1 and 3: the batch is checked too) against the same
PyTorch model. Every output must agree within ``--rtol`` (largest absolute difference over the
largest absolute value of the PyTorch output: :func:`mmvit_plugin.numerics.relative_error`,
``'max'``); if one does not, or an input dimension came out
fixed, nothing is written and the tool exits with status 1 and the table of errors.

Without CKPT the model keeps its random initialisation (nothing is downloaded): the export and
its check are as valid, the outputs meaningless. CKPT is a whole-model checkpoint (a path or any
URI ``load_from`` takes), or with ``--backbone-only`` also a backbone checkpoint in any layout the
backbone reads.
"""
import copy
import json
import os
import os.path as osp
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmvit_plugin.apis.config import check_scope, checkpoint_uri, load_config
from mmvit_plugin.apis.runner import build_model
from mmvit_plugin.numerics import relative_error

#: Traced size: every stage of every backbone here spans at least two windows / stripes each way
#: at 512x512 (Swin's last stage three windows, CSWin's stage 3 five stripes). The exporter takes
#: a size that is 1 at the traced size as fixed, derived ones too (the windows of a stage), and
#: says nothing: Swin traced at 96x128, one window in its last stage, is wrong at 200x300.
DEFAULT_SHAPE = (512, 512)
DEFAULT_CHECK_SHAPES = ((333, 517), (97, 131))
#: Traced batch: torch.export fixes a dimension whose example size is 1.
TRACE_BATCH = 2
#: Batches of the checks at the other sizes (the traced size runs at TRACE_BATCH).
CHECK_BATCHES = (1, 3)
#: Above this many bytes of weights, they go to a ``.data`` file beside the model (protobuf's 2 GB
#: limit on one file).
EXTERNAL_DATA_BYTES = 1_800_000_000


class ExportError(RuntimeError):
    """The export failed or its check did not pass; nothing was written."""


# --- what to export -----------------------------------------------------------------------------
class SegmentorLogits(nn.Module):
    """A segmentor's ``mode='tensor'`` forward: backbone (+ neck) and decode head, the logits."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.segmentor(inputs, None, mode='tensor')


class DetectorFeatures(nn.Module):
    """A detector's backbone and neck (``extract_feat``): the pyramid its heads take."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.detector.extract_feat(inputs))


def export_target(model: nn.Module, scope: str, backbone_only: bool) -> Tuple[nn.Module, str]:
    """The module to export and a sentence saying what it is."""
    if backbone_only:
        return model.backbone, f'the backbone ({type(model.backbone).__name__}) alone'
    if scope == 'mmseg':
        return SegmentorLogits(model), (f'the whole segmentor ({type(model).__name__}, '
                                        "mode='tensor'): decode-head logits, not resized")
    neck = getattr(model, 'neck', None)
    what = 'backbone + neck' if neck is not None else 'backbone (the detector has no neck)'
    return DetectorFeatures(model), (
        f'{what} of the detector ({type(model).__name__}); its RPN / RoI heads and NMS are not '
        'exported (mmdeploy exports them, with its own ops)')


class MatmulAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two products with averaging matrices (``Ph x Pwᵀ``), built from
    the input size at run time.

    torch 2.14's ONNX exporter decomposes adaptive average pooling with window bounds fixed at the
    traced size: the file is wrong at other sizes (0.2–2 absolute error, or out-of-range gathers)
    for every output size but 1, which is what UperNet's pyramid pooling (1, 2, 3, 6) uses. These
    products give the same windows (``[floor(i n / k), ceil((i + 1) n / k))``) for any size.
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    @staticmethod
    def averaging_matrix(size: int, out: int, like: torch.Tensor) -> torch.Tensor:
        """``(out, size)``: row ``i`` averages window ``i`` of ``out`` adaptive windows."""
        i = torch.arange(out, device=like.device)
        start = i * size // out
        end = ((i + 1) * size + out - 1) // out
        j = torch.arange(size, device=like.device)
        inside = (j >= start[:, None]) & (j < end[:, None])
        return inside.to(like.dtype) / (end - start).to(like.dtype)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        out_h, out_w = ((self.output_size, ) * 2 if isinstance(self.output_size, int)
                        else self.output_size)
        rows = self.averaging_matrix(height, height if out_h is None else out_h, x)
        cols = self.averaging_matrix(width, width if out_w is None else out_w, x)
        return rows @ x @ cols.t()


def exportable_copy(module: nn.Module) -> Tuple[nn.Module, int]:
    """A copy of ``module`` whose adaptive average poolings (other than to 1x1, which exports
    right) are :class:`MatmulAdaptiveAvgPool2d`; and how many were replaced."""
    module = copy.deepcopy(module)
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d) and child.output_size not in (1, (1, 1)):
                setattr(parent, name, MatmulAdaptiveAvgPool2d(child.output_size))
                replaced += 1
    return module, replaced


def load_weights(model: nn.Module, checkpoint: Optional[str], backbone_only: bool) -> str:
    """Load CKPT into the model (a backbone file too, with ``--backbone-only``); returns a note."""
    if checkpoint is None:
        return 'no checkpoint: random weights (the check is as valid, the outputs meaningless)'
    from mmengine.runner import load_checkpoint
    uri = checkpoint_uri(checkpoint, 'checkpoint')
    if backbone_only:
        # any layout the backbone reads: official releases, whole models (backbone.* keys), ours
        model.backbone.load_pretrained(uri, prefix='backbone.')
    else:
        load_checkpoint(model, uri, map_location='cpu', strict=True)
    return f'weights from {checkpoint}'


# --- export and check ---------------------------------------------------------------------------
def output_names(module: nn.Module, example: torch.Tensor) -> List[str]:
    with torch.no_grad():
        outs = module(example)
    if isinstance(outs, torch.Tensor):
        return ['output']
    return [f'output{i}' for i in range(len(outs))]


def export(module: nn.Module, example: torch.Tensor, path: str, opset: Optional[int]) -> Any:
    """``torch.export`` with dynamic batch, height and width, then ONNX; returns the ONNXProgram.
    ``module`` is what is traced: pass :func:`exportable_copy`'s copy.

    The exported program is made here rather than by ``torch.onnx.export``, which on failure falls
    back to a trace with every size fixed (a file that only works at the traced size)."""
    from torch.export import Dim
    dynamic = {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}
    try:
        program = torch.export.export(module, (example, ), dynamic_shapes=({**dynamic}, ),
                                      strict=False)
    except Exception as err:  # noqa: BLE001  (reported with what failed)
        raise ExportError(f'torch.export could not trace the model with dynamic sizes: '
                          f'{type(err).__name__}: {str(err)[:3000]}') from err
    weight_bytes = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    try:
        return torch.onnx.export(program, (example, ), path, dynamo=True, input_names=['input'],
                                 output_names=output_names(module, example), opset_version=opset,
                                 external_data=weight_bytes > EXTERNAL_DATA_BYTES, verbose=False)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f'torch.onnx could not convert the exported program: '
                          f'{type(err).__name__}: {str(err)[:3000]}') from err


def input_size_ranges(program: Any) -> List[Tuple[Optional[int], Optional[int]]]:
    """``(min, max)`` of each input dimension in the exported program (None where unbounded)."""
    placeholder = next(n for n in program.graph.nodes if n.op == 'placeholder'
                       and n.name in program.graph_signature.user_inputs)
    ranges = []
    for size in placeholder.meta['val'].shape:
        if isinstance(size, int):
            ranges.append((size, size))
            continue
        bounds = program.range_constraints.get(size.node.expr)
        ranges.append((_finite(bounds.lower), _finite(bounds.upper)) if bounds is not None
                      else (None, None))
    return ranges


def _finite(bound: Any) -> Optional[int]:
    """A sympy range bound as an int; None for torch's (and sympy's) infinities."""
    from torch.utils._sympy.numbers import int_oo
    if bound in (int_oo, -int_oo) or not bound.is_number or bound.is_finite is False:
        return None
    return int(bound)


def check_dynamic_inputs(path: str) -> None:
    """The file's input must have symbolic batch, height and width."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    fixed = [('batch', 'channels', 'height', 'width')[i] + f' = {d.dim_value}'
             for i, d in enumerate(dims) if i != 1 and not d.dim_param]
    if fixed:
        raise ExportError(f'the exported input has fixed sizes ({", ".join(fixed)}): the model '
                          'would only run at the traced size')


def check_file(path: str, module: nn.Module, cases: Sequence[Tuple[int, int, int]],
               channels: int, rtol: float) -> List[Dict[str, Any]]:
    """Run the written file in onnxruntime at each ``(batch, H, W)`` against ``module``."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name
    report = []
    generator = torch.Generator().manual_seed(0)
    for batch, height, width in cases:
        x = torch.randn(batch, channels, height, width, generator=generator)
        with torch.no_grad():
            expected = module(x)
        expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
        row: Dict[str, Any] = dict(batch=batch, height=height, width=width)
        try:
            got = session.run(None, {input_name: x.numpy()})
        except Exception as err:  # noqa: BLE001  (onnxruntime's errors are the report)
            row.update(errors=None, error=f'onnxruntime failed: {str(err)[:500]}', ok=False)
        else:
            errors = [relative_error(g, e) for g, e in zip(got, expected)]
            shapes_ok = len(got) == len(expected)
            row.update(errors=errors, shapes=[list(g.shape) for g in got],
                       ok=shapes_ok and all(e <= rtol for e in errors))
            if not shapes_ok:
                row['error'] = f'{len(got)} outputs, PyTorch gives {len(expected)}'
        report.append(row)
    return report


def format_report(report: Sequence[Dict[str, Any]], rtol: float) -> str:
    lines = [f'{"input (N x H x W)":<22}{"max relative error per output":<44}result']
    for row in report:
        case = f'{row["batch"]} x {row["height"]} x {row["width"]}'
        if row.get('errors') is None:
            lines.append(f'{case:<22}{row["error"]}')
            continue
        errors = ' '.join(f'{e:.1e}' for e in row['errors'])
        verdict = 'ok' if row['ok'] else f'FAIL (> {rtol:g})' + (f': {row["error"]}' if 'error' in row else '')
        lines.append(f'{case:<22}{errors:<44}{verdict}')
    return '\n'.join(lines)


def check_cases(shape: Tuple[int, int], others: Sequence[Tuple[int, int]],
                ranges: Sequence[Tuple[Optional[int], Optional[int]]]) -> Tuple[List[Tuple[int, int, int]], List[str]]:
    """The ``(batch, H, W)`` cases: the traced size, then the others within the exported ranges
    (batches alternating 1 and 3); and notes on sizes left out."""
    cases = [(TRACE_BATCH, *shape)]
    notes = []
    for i, (height, width) in enumerate(others):
        outside = [(name, size, lo) for name, size, (lo, _) in
                   (('H', height, ranges[2]), ('W', width, ranges[3])) if lo is not None and size < lo]
        if outside:
            notes.append(f'{height}x{width} not checked: below the exported minimum '
                         + ', '.join(f'{name} >= {lo}' for name, _, lo in outside))
            continue
        cases.append((CHECK_BATCHES[i % len(CHECK_BATCHES)], height, width))
    return cases, notes


def export_and_check(result: Dict[str, Any], config: str, checkpoint: Optional[str], out: str,
                     shape: Sequence[int] = DEFAULT_SHAPE,
                     check_shapes: Sequence[Tuple[int, int]] = DEFAULT_CHECK_SHAPES,
                     backbone_only: bool = False, rtol: float = 1e-4,
                     opset: Optional[int] = None, cfg_options: Optional[dict] = None) -> None:
    """Build, export to a temporary file, check it, and move it to ``out`` if it passes;
    ``result`` collects the report as it goes (JSON-ready, also when an ExportError stops it)."""
    cfg = load_config(config, cfg_options)
    check_scope(cfg, config)
    torch.manual_seed(0)
    model = build_model(cfg)
    weights = load_weights(model, checkpoint, backbone_only)
    module, what = export_target(model, cfg.default_scope, backbone_only)
    module.eval()
    channels = getattr(model.backbone, 'in_channels', 3)
    shape = tuple(shape)
    print(f'exporting {what}\n{weights}', flush=True)

    out = osp.abspath(out)
    os.makedirs(osp.dirname(out), exist_ok=True)
    example = torch.randn(TRACE_BATCH, channels, *shape)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=osp.dirname(out)) as tmp:
        tmp_file = osp.join(tmp, osp.basename(out))
        traced, replaced = exportable_copy(module)
        if replaced:
            print(f'{replaced} adaptive average pooling(s) exported as averaging products '
                  '(torch.onnx fixes their windows at the traced size)', flush=True)
        program = export(traced, example, tmp_file, opset)
        export_seconds = time.perf_counter() - start
        check_dynamic_inputs(tmp_file)
        ranges = input_size_ranges(program.exported_program)
        cases, notes = check_cases(shape, check_shapes, ranges)
        start = time.perf_counter()
        report = check_file(tmp_file, module, cases, channels, rtol)
        result.update(config=config, exported=what, weights=weights, out=out,
                      trace_shape=[TRACE_BATCH, channels, *shape], rtol=rtol,
                      dynamic_ranges=dict(zip(('batch', 'channels', 'height', 'width'), ranges)),
                      export_seconds=round(export_seconds, 1),
                      check_seconds=round(time.perf_counter() - start, 1), checks=report,
                      notes=notes, ok=all(row['ok'] for row in report), torch=torch.__version__)
        print(format_report(report, rtol))
        for note in notes:
            print(f'note: {note}')
        if not result['ok']:
            raise ExportError(f'onnxruntime disagrees with PyTorch (rtol {rtol:g}); '
                              f'{out} was not written')
        for name in os.listdir(tmp):  # the model, and its weights file if they are external
            os.replace(osp.join(tmp, name), osp.join(osp.dirname(out), name))
    lo_h, lo_w = ranges[2][0], ranges[3][0]
    print(f'wrote {out} (export {export_seconds:.0f} s): input N x {channels} x H x W, N, H and W '
          f'dynamic (H >= {lo_h or 1}, W >= {lo_w or 1}); checked at '
          + ', '.join(f'{b}x{h}x{w}' for b, h, w in cases), flush=True)


def export_onnx(config: str, checkpoint: Optional[str] = None, out: str = 'model.onnx',
                shape: Sequence[int] = DEFAULT_SHAPE,
                check_shapes: Sequence[Tuple[int, int]] = DEFAULT_CHECK_SHAPES,
                backbone_only: bool = False, rtol: float = 1e-4, opset: Optional[int] = None,
                cfg_options: Optional[dict] = None, json_out: Optional[str] = None) -> int:
    """Export the config's model (:func:`export_target`) to ``out`` with dynamic batch, height
    and width, and keep the file only if onnxruntime agrees with PyTorch within ``rtol`` at the
    traced size and at ``check_shapes``: 0, else 1 with the error on stderr. ``checkpoint``: a
    whole-model file (path or URI; with ``backbone_only`` also a backbone file), None for the
    random initialisation. ``json_out``: also write the check report there."""
    result: Dict[str, Any] = dict(config=config, ok=False)
    try:
        export_and_check(result, config, checkpoint, out, shape, check_shapes, backbone_only, rtol,
                         opset, cfg_options)
        status = 0
    except ExportError as err:
        print(f'error: {err}', file=sys.stderr)
        status = 1
    if json_out:
        with open(json_out, 'w') as f:
            json.dump(result, f, indent=1)
    return status
