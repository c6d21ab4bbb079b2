"""fp16 and bf16 autocast (on CPU; CUDA is covered by scripts/gpu_check.sh): finite outputs and
gradients, close to fp32, for every backbone, and the places where low precision could break.

* MPViT's factorized attention takes a softmax over all tokens of a map: 200 x 334 = 66,800 at
  stage 1 of an 800x1333 image, more than fp16's largest value (65,504). CPU autocast leaves
  softmax in fp16 (CUDA autocast runs it in fp32), so its sum must be accumulated in fp32.
* Swin's shifted windows add -100 to the scores of token pairs from different regions; in fp16
  and bf16 those pairs must still get no weight, on both attention paths (``'explicit'``, and
  ``'sdpa'``, the CUDA default, run here on CPU).
* CvT's SDPA runs over 66,800 queries and 16,700 keys at stage 1 of an 800x1333 image.

Small widths keep the full 800x1333 cases affordable (a few seconds each with one thread); the
size is what matters for these sums. CvT's cases at 800x1333 (10-15 s each: its stage-1
attention alone is 66,800 x 16,700) are ``slow``.
"""
import inspect
from typing import Dict, List, Optional, Tuple

import pytest
import torch
from mmengine.registry import MODELS

import mmvit_plugin  # noqa: F401  (registers the backbones)
from backbone_checks import assert_rel_close, rel_err
from mmvit_plugin.models.backbones.cvt import ConvAttention
from mmvit_plugin.models.backbones.mpvit import ConvRelPosEnc, FactorizedAttention
from mmvit_plugin.models.backbones.swin import SwinBlock

pytestmark = pytest.mark.numerics

LOW_PRECISION = {'fp16': torch.float16, 'bf16': torch.bfloat16}
#: Stage-1 token map of an 800x1333 image (stride 4, sizes rounded up): 66,800 tokens.
STAGE1_800x1333 = (200, 334)
FP16_MAX = torch.finfo(torch.float16).max
#: The first loss scale of a GradScaler (``torch.amp.GradScaler(init_scale=2**16)``).
FP16_LOSS_SCALE = 2.**16

#: Small widths, depth 1-2 per stage, drop path off (so fp32 and autocast runs do the same work).
SMALL_ARCHS = {
    'Swin': dict(arch=dict(embed_dims=16, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 4))),
    'CSWin': dict(arch=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 4))),
    # stage 1: one head of 64 channels, as in CvT-13
    'CvT': dict(arch=dict(embed_dims=(64, 32, 48, 48), num_heads=(1, 2, 3, 3),
                          depths=(1, 1, 1, 1))),
    'MPViT': dict(arch=dict(embed_dims=(16, 32, 48, 48), num_layers=(1, 1, 1, 1),
                            num_heads=(8, 8, 8, 8), mlp_ratios=(2, 2, 2, 2),
                            num_paths=(2, 2, 2, 2))),
}
#: Largest relative error (Frobenius) allowed against fp32: (outputs per level, all gradients).
#: Measured at 128x160 and 800x1333 (fp16 with the loss scaled): Swin, CSWin, CvT outputs
#: <= 1.0e-3 (fp16) / 8.0e-3 (bf16), gradients <= 1.6e-3 / 1.1e-2; MPViT, whose conv path is some
#: 20 non-residual conv-BN layers deep (each rounding adds its share), outputs <= 7.0e-3 / 5.7e-2,
#: gradients <= 4.2e-2 / 1.2e-1.
TOLERANCES: Dict[str, Dict[str, Tuple[float, float]]] = {
    'default': {'fp16': (5e-3, 1e-2), 'bf16': (3e-2, 5e-2)},
    'MPViT': {'fp16': (3e-2, 1e-1), 'bf16': (1.5e-1, 3e-1)},
}


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every test here on one torch thread (conftest's ``one_torch_thread``)."""


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return ((value.float() - reference.float()).norm() / reference.float().norm()).item()


def build_small(name: str) -> torch.nn.Module:
    """The small arch, drop path off, with SDPA where the backbone has the switch: the path
    ``attn_impl='auto'`` takes on CUDA, where fp16 and bf16 training runs."""
    switch = {}
    if 'attn_impl' in inspect.signature(MODELS.get(name).__init__).parameters:
        switch['attn_impl'] = 'sdpa'
    return MODELS.build(dict(type=name, drop_path_rate=0., **SMALL_ARCHS[name], **switch))


def forward_backward(model: torch.nn.Module, images: torch.Tensor, dtype: Optional[torch.dtype],
                     backward: bool = True) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
    """Outputs (fp32 copies) and all parameter gradients, flattened, of one training step under
    CPU autocast to ``dtype`` (``None``: fp32); without ``backward``, the outputs only. The loss
    weighs every output element by a fixed random factor (a plain mean of a LayerNorm output has
    zero gradient). In fp16 the loss is scaled by :data:`FP16_LOSS_SCALE` for the backward pass
    and the gradients unscaled, as a GradScaler does: unscaled, the gradients of the activations
    (about 1e-6 here) would sit among fp16's subnormals."""
    model.zero_grad(set_to_none=True)
    with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None), \
            torch.set_grad_enabled(backward):
        outs = model(images)
    if not backward:
        return [o.float() for o in outs], None
    weights = torch.Generator().manual_seed(1)
    loss = sum((o.float() * torch.randn(o.shape, generator=weights)).mean() for o in outs)
    scale = FP16_LOSS_SCALE if dtype == torch.float16 else 1.
    (loss * scale).backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return [o.detach().float() for o in outs], grads / scale


def check_close_to_fp32(name: str, size: Tuple[int, int], precision: str,
                        backward: bool = True) -> None:
    torch.manual_seed(0)
    model = build_small(name).train()
    images = torch.randn(1, 3, *size)
    ref_outs, ref_grads = forward_backward(model, images, None, backward)
    outs, grads = forward_backward(model, images, LOW_PRECISION[precision], backward)
    out_tol, grad_tol = TOLERANCES.get(name, TOLERANCES['default'])[precision]
    assert all(torch.isfinite(o).all() for o in outs), f'{name} {precision}: non-finite output'
    errors = [relative_error(o, r) for o, r in zip(outs, ref_outs)]
    assert max(errors) < out_tol, f'{name} {precision} output errors per level {errors}'
    if not backward:
        return
    assert torch.isfinite(grads).all(), f'{name} {precision}: non-finite gradient'
    assert grads.numel() == ref_grads.numel(), 'some parameters got no gradient'
    grad_error = relative_error(grads, ref_grads)
    assert grad_error < grad_tol, f'{name} {precision} gradient error {grad_error:.3g}'


@pytest.mark.parametrize('precision', sorted(LOW_PRECISION))
@pytest.mark.parametrize('name', sorted(SMALL_ARCHS))
def test_low_precision_training_step_is_close_to_fp32(name, precision):
    check_close_to_fp32(name, (128, 160), precision)


@pytest.mark.parametrize('precision', sorted(LOW_PRECISION))
@pytest.mark.parametrize('name', [pytest.param(n, marks=pytest.mark.slow) if n == 'CvT' else n
                                  for n in sorted(SMALL_ARCHS)])  # CvT: 10-15 s each
def test_low_precision_training_step_at_800x1333(name, precision):
    # CvT: forward only. torch 2.14's CPU SDPA backward with one head is some 70x slower than
    # its forward (16,700 x 4,200 tokens, 64 channels: 40 s against 0.6 s here), over ten minutes
    # per pass at stage 1's 66,800 x 16,700; CvT's gradients are checked at 128x160 above and at
    # 800x1333 by scripts/gpu_check.sh.
    check_close_to_fp32(name, (800, 1333), precision, backward=name != 'CvT')


# --- MPViT: softmax over the tokens of a whole map ---------------------------------------------
@pytest.mark.parametrize('precision', sorted(LOW_PRECISION))
def test_mpvit_token_softmax_sums_more_tokens_than_fp16_can_hold(precision):
    """Keys all equal make the softmax over the 66,800 tokens uniform: its sum is 66,800 >
    65,504. Accumulated in fp16 it would be inf, every weight 0 and the attention output 0;
    accumulated in fp32, each weight is 1/66,800 (an fp16 subnormal, rounded by < 0.1 %)."""
    assert STAGE1_800x1333[0] * STAGE1_800x1333[1] > FP16_MAX
    torch.manual_seed(0)
    dims, heads = 8, 8
    attn = FactorizedAttention(dims, heads)
    crpe = ConvRelPosEnc(dims // heads, ((3, 2), (5, 3), (7, 3)))
    with torch.no_grad():
        attn.qkv.weight[dims:2 * dims] = 0  # k = 0 for every token: a uniform softmax
        attn.qkv.bias[dims:2 * dims] = 0
        attn.proj.bias.zero_()
        for conv in crpe.conv_list:  # without the conv term the output is q · context alone
            conv.weight.zero_()
            conv.bias.zero_()
    tokens = torch.randn(1, STAGE1_800x1333[0] * STAGE1_800x1333[1], dims, requires_grad=True)
    reference = attn(tokens, STAGE1_800x1333, crpe)
    with torch.autocast('cpu', dtype=LOW_PRECISION[precision]):
        out = attn(tokens, STAGE1_800x1333, crpe)
    assert torch.isfinite(out).all()
    assert relative_error(out, reference) < {'fp16': 1e-2, 'bf16': 5e-2}[precision]
    out.float().square().mean().backward()
    assert torch.isfinite(tokens.grad).all() and tokens.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in attn.parameters() if p.grad is not None)


# --- Swin: the -100 shift mask ------------------------------------------------------------------
@pytest.mark.parametrize('attn_impl', ['explicit', 'sdpa'])
@pytest.mark.parametrize('precision', sorted(LOW_PRECISION))
def test_swin_shift_mask_keeps_regions_apart_in_low_precision(precision, attn_impl):
    """On a 14x14 map, window 7, shift 3, the bottom-right shifted window holds tokens of rows
    and columns 10..13 and, rolled in from the other side, 0..2: different regions, kept apart
    only by the -100 mask. Changing token (0, 0) must leave the output at (13, 13) as it is,
    while changing (10, 10), of the same region, must not."""
    torch.manual_seed(0)
    block = SwinBlock(16, 2, 7, shift=True, attn_impl=attn_impl).eval()
    x = torch.randn(1, 14, 14, 16)
    change = 3 * torch.randn(16)  # not constant: LayerNorm would remove a constant change
    other_region, same_region = x.clone(), x.clone()
    other_region[0, 0, 0] += change
    same_region[0, 10, 10] += change
    with torch.no_grad():
        reference = block(x)
        with torch.autocast('cpu', dtype=LOW_PRECISION[precision]):
            out, out_other, out_same = (block(t).float() for t in (x, other_region, same_region))
    assert torch.isfinite(out).all()
    assert relative_error(out, reference) < {'fp16': 5e-3, 'bf16': 3e-2}[precision]
    # masked pairs weigh exp(-100) (nothing at this precision); a pair let through, some 1e-2
    assert_rel_close(out_other[0, 13, 13], out[0, 13, 13], 1e-6, 'other region')
    assert rel_err(out_same[0, 13, 13], out[0, 13, 13]) > 1e-3


@pytest.mark.parametrize('precision', sorted(LOW_PRECISION))
def test_swin_low_precision_gradients_with_shift_mask(precision):
    torch.manual_seed(0)
    block = SwinBlock(16, 2, 7, shift=True, attn_impl='explicit').train()
    x = torch.randn(2, 17, 23, 16, requires_grad=True)  # padded to 21x28: mask and padding
    with torch.autocast('cpu', dtype=LOW_PRECISION[precision]):
        out = block(x)
    out.float().square().mean().backward()
    assert torch.isfinite(out.float()).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in block.parameters())


# --- CvT: SDPA over a whole stage-1 map ---------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize('precision', sorted(LOW_PRECISION))
def test_cvt_attention_over_a_whole_800x1333_stage1_map(precision):
    """66,800 queries x 16,700 keys (k/v at stride 2) in one head of 64 channels, as CvT-13,
    through SDPA (what ``attn_impl='auto'`` runs on CUDA)."""
    torch.manual_seed(0)
    has_switch = 'attn_impl' in inspect.signature(ConvAttention).parameters
    switch = {'attn_impl': 'sdpa'} if has_switch else {}
    attn = ConvAttention(64, 1, **switch).eval()
    tokens = torch.randn(1, STAGE1_800x1333[0] * STAGE1_800x1333[1], 64)
    with torch.no_grad():
        reference = attn(tokens, *STAGE1_800x1333)
        with torch.autocast('cpu', dtype=LOW_PRECISION[precision]):
            out = attn(tokens, *STAGE1_800x1333)
    assert torch.isfinite(out).all()
    assert relative_error(out, reference) < {'fp16': 5e-3, 'bf16': 3e-2}[precision]
