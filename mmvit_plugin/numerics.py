"""How far a result is from its reference: the one relative error of the tools and checks.

Two measures, named where they are used, because the checks ask different questions:

* ``'max'``: ``max|actual - expected| / max|expected|``, the largest element error on the scale
  of the reference (the ONNX export's check, the agreement figures of the README);
* ``'fro'``: ``‖actual - expected‖ / ‖expected‖`` (Frobenius norms), the error of a whole output
  or gradient, which a few large elements dominate less (the GPU check's bf16 / fp16 vs fp32).

Computed in float64; ``actual`` may be a numpy array (onnxruntime's outputs).
"""
import math
from typing import Any, Optional

import torch


def relative_error(actual: Any, expected: Any, norm: str = 'max',
                   scale: Optional[float] = None) -> float:
    """The relative error of ``actual`` against ``expected`` (tensors or numpy arrays).

    ``scale`` replaces the reference's own size (``max|expected|`` or ``‖expected‖``). A shape
    mismatch is ``inf``; an empty reference ``0``; an all-zero one ``0`` when ``actual`` equals
    it, else ``inf``.
    """
    if norm not in ('max', 'fro'):
        raise ValueError(f"norm must be 'max' or 'fro', not {norm!r}")
    actual, expected = _float64(actual), _float64(expected)
    if tuple(actual.shape) != tuple(expected.shape):
        return math.inf
    if not expected.numel():
        return 0.
    diff = actual - expected
    if norm == 'max':
        error = diff.abs().max().item()
        size = expected.abs().max().item() if scale is None else scale
    else:
        error = diff.norm().item()
        size = expected.norm().item() if scale is None else scale
    if size == 0:
        return 0. if error == 0 else math.inf
    return error / size


def _float64(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to('cpu', torch.float64)
    return torch.as_tensor(value).to(torch.float64)
