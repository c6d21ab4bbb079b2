"""mmvit_plugin.numerics.relative_error: the one relative error of the tools and checks."""
import math

import numpy as np
import pytest
import torch

from mmvit_plugin.numerics import relative_error


def test_max_is_the_largest_element_error_on_the_reference_scale():
    expected = torch.tensor([[1., -4.], [2., 0.5]])
    got = expected.numpy() + np.array([[0., 0.], [0.2, 0.]], dtype=np.float32)  # onnxruntime's
    assert relative_error(got, expected) == pytest.approx(0.05, rel=1e-6)
    assert relative_error(got, expected, scale=2.) == pytest.approx(0.1, rel=1e-6)


def test_fro_is_the_error_of_the_whole_tensor():
    expected = torch.tensor([3., 4.])
    assert relative_error(torch.tensor([3., 4.5]), expected, 'fro') == pytest.approx(0.1)
    # half precision in, float64 arithmetic: the error is bf16's, not the subtraction's
    value = expected.to(torch.bfloat16) + 0.25
    assert relative_error(value, expected, 'fro') == pytest.approx(math.sqrt(2) * 0.25 / 5)


def test_edge_cases():
    assert relative_error(torch.zeros(2, 3), torch.zeros(3, 2)) == math.inf  # another shape
    assert relative_error(torch.zeros(0), torch.zeros(0)) == 0.
    assert relative_error(torch.zeros(3), torch.zeros(3), 'fro') == 0.
    assert relative_error(torch.ones(3), torch.zeros(3)) == math.inf
    with pytest.raises(ValueError, match="norm must be 'max' or 'fro'"):
        relative_error(torch.ones(1), torch.ones(1), 'l1')
