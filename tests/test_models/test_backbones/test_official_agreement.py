"""Ours agrees with the official implementations: features and gradients, recorded.

The official code cannot be part of the suite, so its results are recorded in
``tests/data/official_reference.pt.gz`` (by ``tools/compare_official.py ... --record``; see
:func:`mmvit_plugin.benchmark.official.record_reference`): per family a small arch (Swin: two
blocks per stage, so shifted windows; CSWin: stripes of 1, 2, 7 and the global last stage; CvT:
the cls token of stage 2; MPViT: 2 and 3 paths, shared position encodings), its weights (fp16),
and for a 97x131 and a 333x517 input the official module's features and gradients (eval mode)
of a fixed projection loss: the input gradient and every parameter gradient (our names).
The big maps (features, input gradient) are recorded at a grid of rows and columns that includes
the last ones, where the padding is, and at up to 8 channels.

The official module ran in float64 (its exact function; the weights are fp16-representable and
the fp32 input exact in float64), results stored in fp32. Each of ours, in fp32 and for every
attention implementation, must be within 1e-5 relative (``max|a - b| / max|b|`` per tensor) of
those values, or, where the official code's own fp32 run is further than that from its float64 run
(the record holds that error per tensor; some parameter gradients of these random networks are
ill-conditioned: MPViT's reach 2.5e-5), within 3 times the official's own largest fp32 error of
that case and kind (:func:`~mmvit_plugin.benchmark.official.tolerance`). A parameter gradient
that is zero in exact arithmetic (CvT's key biases) must stay at rounding level in ours.
"""
import gzip
import io
from functools import lru_cache
from pathlib import Path

import pytest
import torch

from mmvit_plugin.benchmark.official import (ATTN_IMPLS, RTOL, ZERO_GRAD_OURS, gradient_errors,
                                             reference_input, reference_weights, run_with_grads,
                                             sample, tolerance)
from mmvit_plugin.engine import load_weights
from mmvit_plugin.models.families import backbone_class
from mmvit_plugin.numerics import relative_error

pytestmark = pytest.mark.numerics

REFERENCE = Path(__file__).resolve().parents[2] / 'data' / 'official_reference.pt.gz'
CASES = [(family, impl) for family in ('swin', 'cswin', 'cvt', 'mpvit')
         for impl in ATTN_IMPLS[family]]


@lru_cache(maxsize=1)
def recorded() -> dict:
    with gzip.open(REFERENCE, 'rb') as f:
        return torch.load(io.BytesIO(f.read()), weights_only=True)


def test_reference_covers_every_family_and_both_sizes():
    record = recorded()
    assert sorted(record['families']) == ['cswin', 'cvt', 'mpvit', 'swin']
    assert [tuple(case['size']) for case in record['inputs']] == [(97, 131), (333, 517)]
    for family, entry in record['families'].items():
        assert len(entry['cases']) == len(record['inputs']), family
        assert all(commit for commit in record['commits'].values()), record['commits']


@pytest.mark.parametrize('family, attn_impl', CASES)
def test_features_and_gradients_match_official(family, attn_impl):
    record = recorded()
    entry = record['families'][family]
    kwargs = dict(entry['kwargs'])
    if attn_impl is not None:
        kwargs['attn_impl'] = attn_impl
    model = backbone_class(family)(**kwargs)
    state = {k: v.float() if v.is_floating_point() else v for k, v in entry['state_dict'].items()}
    fit = load_weights(model, state, 'evaluate', source='official reference')
    assert not fit.missing and not fit.unexpected and not fit.mismatched, fit
    model.eval()
    failures = []
    for k, (given, case) in enumerate(zip(record['inputs'], entry['cases'])):
        size = tuple(given['size'])
        x = reference_input(given['base'], size)
        # the same input as recorded (generation is arithmetic only; checked anyway)
        assert relative_error(sample(x), given['sample']) < 1e-6, size
        outs, x_grad, grads, _ = run_with_grads(model, x, lambda shapes: reference_weights(shapes, k))
        noise = case['official_fp32_error']
        assert len(outs) == len(case['features']), size
        tol = tolerance(noise['features'])
        for level, (got, want) in enumerate(zip(outs, case['features'])):
            err = relative_error(sample(got), want)
            if not err <= tol:
                failures.append(f'{size} features level {level}: {err:.2e} (tolerance {tol:.1e})')
        tol = tolerance([noise['input_grad']])
        err = relative_error(sample(x_grad), case['input_grad'])
        if not err <= tol:
            failures.append(f'{size} input gradient: {err:.2e} (tolerance {tol:.1e})')
        g = gradient_errors(grads, case['param_grads'])
        tol = tolerance(noise['param_grads'].values())
        if not g['worst'] <= tol:
            failures.append(f"{size} parameter gradient {g['worst_key']}: {g['worst']:.2e} "
                            f'(tolerance {tol:.1e})')
        if not g['zero_worst'] <= ZERO_GRAD_OURS:
            failures.append(f"{size} gradients zero in exact arithmetic {g['zero_keys']}: ours "
                            f"{g['zero_worst']:.1e} of the largest")
    assert not failures, f'{family} ({attn_impl}) vs official, relative errors: {failures}'


def test_tolerance_stays_near_1e_5():
    """The official code's own fp32 error does not make the check loose: features at 1e-5,
    gradients at most 1e-4 (MPViT's ill-conditioned ones)."""
    for family, entry in recorded()['families'].items():
        for case in entry['cases']:
            noise = case['official_fp32_error']
            assert tolerance(noise['features']) == RTOL, family
            assert tolerance([noise['input_grad']]) <= 1e-4, family
            assert tolerance(noise['param_grads'].values()) <= 1e-4, family
    assert tolerance([0., 2e-6]) == RTOL and tolerance([1e-5]) == pytest.approx(3e-5)


def test_check_notices_a_wrong_weight():
    """The comparison is not vacuous: one LayerNorm weight off by 1e-3 fails it."""
    record = recorded()
    entry = record['families']['swin']
    model = backbone_class('swin')(**entry['kwargs'])
    state = {k: v.float() if v.is_floating_point() else v for k, v in entry['state_dict'].items()}
    state['stages.2.blocks.1.norm2.weight'][0] += 1e-3
    load_weights(model, state, 'evaluate', source='official reference')
    model.eval()
    given, case = record['inputs'][0], entry['cases'][0]
    x = reference_input(given['base'], tuple(given['size']))
    outs, x_grad, grads, _ = run_with_grads(model, x, lambda shapes: reference_weights(shapes, 0))
    errors = [relative_error(sample(o), w) for o, w in zip(outs, case['features'])]
    errors.append(relative_error(sample(x_grad), case['input_grad']))
    errors.append(gradient_errors(grads, case['param_grads'])['worst'])
    assert max(errors) > 1e-4, errors
