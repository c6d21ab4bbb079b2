"""Whole-model FLOPs (multiply-accumulates) and parameters of a segmentor or detector config, as
tools/get_flops.py reports them.

The model is built from an OpenMMLab 2.0 config (``default_scope`` ``mmseg`` or ``mmdet``), put in
eval mode, and one image of the given size is traced through mmengine's FlopAnalyzer
(:mod:`.flops`: with handles for ``F.scaled_dot_product_attention`` and ``baddbmm``, structural
zeros left out). Counts are multiply-accumulates, the "FLOPs" of mmseg/mmdet's get_flops and of
the Swin/CSWin papers.

What is counted:

* Segmentors (mmseg): ``extract_feat`` then ``decode_head``, the path of ``_forward`` (mode
  'tensor'), one image of H x W, default 512 x 2048 as the UperNet results of the Swin/CSWin
  papers (mmseg's own get_flops defaults to 2048 x 1024, and in mmseg 1.2.2 stops with mmengine
  0.10's "input_shape and inputs cannot be both set"). The ``auxiliary_head`` is trained but
  not run at test time: its FLOPs are shown on their own line and left out of the total, as mmseg
  (1.x drops the head before counting; 0.x, which the papers used, never ran it). Parameters are
  given for all modules (the papers' convention: mmcv 1.x summed ``model.parameters()``) and
  without the auxiliary head (mmseg 1.x's get_flops convention).
* Detectors (mmdet): ``model.forward(inputs, data_samples, mode='tensor')`` after the data
  preprocessor, as mmdet 3.x's get_flops. For two-stage detectors the RPN head runs, and the
  RoI heads get ``test_cfg.rpn.max_per_img`` (1000) random proposals, as in mmdet 2.x's get_flops
  which the papers' figures come from (what NMS keeps from random weights varies, and the count
  with it); the numbers of RoIs are printed. Mask heads count on the first 100 RoIs, as mmdet
  2.x's get_flops (mmdet 3.x's tensor forward of Cascade Mask R-CNN runs its three mask heads on
  every proposal; their share is scaled to 100). Default input 1280 x 800
  (H x W), mmdet 2.x's get_flops default and the size the Swin paper quotes; mmdet 3.x's tool has
  no size option and averages over 100 validation images resized to fit 1333 x 800.

Ops without a MACs handle (element-wise add/mul, softmax, GELU, ...) count as zero, as in
mmengine and fvcore; the table lists how often each ran. Products with the structural zeros of
MPViT's fused kernels (block-diagonal attention, zero-padded position-encoding kernels) are left
out and their number printed (:mod:`.flops`): the count is the model's arithmetic,
equal to that of the official per-head implementation.
"""
import json
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from mmvit_plugin.apis.config import check_scope, load_config
from mmvit_plugin.apis.runner import build_model
from mmvit_plugin.testing import random_det_batch, random_seg_batch
from .flops import analyze_flops, count_params

DEFAULT_SHAPES = {'mmseg': (512, 2048), 'mmdet': (1280, 800)}
#: mmdet 2.x's get_flops (the papers' figures) ran the mask heads on the first 100 RoIs.
MASK_ROIS = 100
TRAIN_ONLY = ('auxiliary_head', )
MIN_SIDE = 32  # the backbones downsample 32x; smaller inputs have empty last stages


def parse_shape(shape: Optional[List[int]]) -> Optional[Tuple[int, int]]:
    """``(H, W)`` from ``--shape`` (None if not given); exits unless 1 or 2 sizes >= 32."""
    if shape is None:
        return None
    if len(shape) not in (1, 2) or min(shape) < MIN_SIDE:
        raise SystemExit(f'error: --shape takes H W or one size N (N x N), each at least '
                         f'{MIN_SIDE}; got {" ".join(map(str, shape))}')
    return (shape[0], shape[-1])


def segmentor_batch(model: nn.Module, size: Tuple[int, int]) -> Tuple[torch.Tensor, Callable]:
    """The preprocessed image and the tensor path: backbone (+ neck), decode and auxiliary heads."""
    data = model.data_preprocessor(random_seg_batch(size, batch=1))

    def forward(inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = model.extract_feat(inputs)
        heads = ['decode_head'] + [h for h in TRAIN_ONLY if getattr(model, h, None) is not None]
        return tuple(getattr(model, head)(feats) for head in heads)

    return data['inputs'], forward


def detector_batch(model: nn.Module, size: Tuple[int, int]) -> Tuple[torch.Tensor, Callable]:
    """The preprocessed image and ``model.forward(inputs, data_samples, mode='tensor')``."""
    data = model.data_preprocessor(random_det_batch(size, batch=1))
    forward = model.forward  # the model's own; measure() then replaces the attribute

    def tensor_forward(inputs: torch.Tensor) -> Any:
        return forward(inputs, data['data_samples'], mode='tensor')

    return data['inputs'], tensor_forward


def record_rois(model: nn.Module) -> Dict[str, int]:
    """Numbers of RoIs the RoI heads run on, per stage (filled while the model runs; empty if
    none). Cascade heads are ModuleLists of one head per stage; all stages see the same RoIs."""
    rois: Dict[str, int] = {}
    roi_head = getattr(model, 'roi_head', None)
    for name in ('bbox_head', 'mask_head'):
        head = getattr(roi_head, name, None)
        for stage in (head if isinstance(head, nn.ModuleList) else [head] if head else []):
            stage.register_forward_pre_hook(
                lambda module, args, name=name: rois.__setitem__(name, int(args[0].shape[0])))
    return rois


def fix_proposals(model: nn.Module) -> None:
    """Two-stage detectors: the RPN head runs (and counts), then the RoI heads get as many random
    proposals as the RPN may keep (``test_cfg.rpn.max_per_img``, 1000 in the recipes), as mmdet
    2.x's get_flops gave them 1000: what NMS keeps from a randomly initialised RPN varies from 0
    to 1000 with the backbone (0 for MPViT-B here), and the RoI heads' count with it."""
    from mmengine.structures import InstanceData
    rpn = getattr(model, 'rpn_head', None)
    if rpn is None:
        return
    count = model.test_cfg['rpn']['max_per_img']

    def proposals(height: int, width: int) -> InstanceData:
        size = torch.tensor([width, height], dtype=torch.float32)
        corner = torch.rand(count, 2) * size
        other = torch.minimum(corner + 1 + torch.rand(count, 2) * size / 4, size)
        return InstanceData(bboxes=torch.cat([corner, other], 1), scores=torch.ones(count),
                            labels=torch.zeros(count, dtype=torch.long))

    def predict_by_feat(cls_scores: List[torch.Tensor], bbox_preds: List[torch.Tensor], *args: Any,
                        batch_img_metas: List[dict], **kwargs: Any) -> List[Any]:
        # 0 x the RPN outputs keeps the RPN head in the traced graph (the tracer drops what no
        # output depends on); sums and products have no MACs handle, so nothing is added
        anchor = 0 * sum(t.sum() for t in list(cls_scores) + list(bbox_preds))
        results = [proposals(*meta['img_shape'][:2]) for meta in batch_img_metas]
        for result in results:
            result.bboxes = result.bboxes + anchor
        return results

    rpn.predict_by_feat = predict_by_feat


def mask_head_excess(report: Any, rois: Dict[str, int]) -> int:
    """MACs of the mask heads beyond the first :data:`MASK_ROIS` RoIs. mmdet 3.x's tensor forward
    of Cascade Mask R-CNN runs its three mask heads on every proposal; mmdet 2.x's get_flops, which
    the papers' figures come from, on the first 100 (as 3.x's Mask R-CNN still does). A mask head
    works on each RoI alone, so its count scales with their number."""
    seen = rois.get('mask_head', 0)
    if seen <= MASK_ROIS:
        return 0
    return report.by_module.get('roi_head.mask_head', 0) * (seen - MASK_ROIS) // seen


def measure(cfg: Any, size: Tuple[int, int]) -> Dict[str, Any]:
    """Build, trace once, and collect the counts (JSON-ready)."""
    torch.manual_seed(0)  # the image, and for detectors the proposals that survive NMS
    model = build_model(cfg)
    scope = cfg.default_scope
    inputs, forward = (segmentor_batch if scope == 'mmseg' else detector_batch)(model, size)
    rois = record_rois(model)
    fix_proposals(model)
    model.forward = forward  # FlopAnalyzer traces model(inputs); submodules keep their names
    with torch.no_grad():
        report = analyze_flops(model, (inputs, ))
    excess = mask_head_excess(report, rois)
    modules = {}
    for name, child in model.named_children():
        params = count_params(child)
        macs = report.by_child[name] - (excess if name == 'roi_head' else 0)
        if macs or params:
            modules[name] = dict(macs=macs, params=params, in_total=name not in TRAIN_ONLY)
    excluded = sum(m['macs'] for m in modules.values() if not m['in_total']) + excess
    params = count_params(model)
    return dict(
        config=cfg.filename, scope=scope, model=type(model).__name__,
        input_shape=list(inputs.shape), macs=report.total - excluded, params=params,
        inference_params=params - sum(m['params'] for m in modules.values() if not m['in_total']),
        other_macs=report.total - excess - sum(m['macs'] for m in modules.values()),
        modules=modules, rois=rois, mask_rois_counted=min(rois.get('mask_head', 0), MASK_ROIS),
        structural_zeros=report.structural_zeros, uncounted_ops=report.uncounted,
        torch=torch.__version__)


def format_report(result: Dict[str, Any]) -> str:
    g, m = 1e9, 1e6
    n, c, h, w = result['input_shape']
    lines = [f'{result["config"]}: {result["model"]} ({result["scope"]}), input {n}x{c}x{h}x{w} '
             f'(N x C x H x W)', '',
             f'{"module":<22}{"GFLOPs (GMACs)":>16}{"params (M)":>12}']
    for name, mod in result['modules'].items():
        mark = '' if mod['in_total'] else ' *'
        lines.append(f'{name + mark:<22}{mod["macs"] / g:>16.2f}{mod["params"] / m:>12.2f}')
    if result['other_macs']:
        lines.append(f'{"(outside submodules)":<22}{result["other_macs"] / g:>16.2f}{"":>12}')
    in_total = [n for n, mod in result['modules'].items() if mod['in_total'] and mod['macs']]
    lines += ['-' * 50,
              f'{"total":<22}{result["macs"] / g:>16.2f}{result["params"] / m:>12.2f}', '',
              f'Total FLOPs: {" + ".join(in_total)} (what runs at test time).']
    left_out = [n for n, mod in result['modules'].items() if not mod['in_total']]
    if left_out:
        lines.append(f'* {", ".join(left_out)}: training only; FLOPs left out of the total (as '
                     f'mmseg and the papers), parameters included. Without: '
                     f'{result["inference_params"] / m:.2f} M params (mmseg 1.x get_flops).')
    if result['rois']:
        lines.append('RoIs: ' + ', '.join(f'{k} {v}' for k, v in result['rois'].items()))
        if result['rois'].get('mask_head', 0) > result['mask_rois_counted']:
            lines.append(f'Mask heads counted on the first {result["mask_rois_counted"]} RoIs, as '
                         'mmdet 2.x\'s get_flops and the papers (mmdet 3.x runs them on all).')
    if result['structural_zeros']:
        lines.append(f'Left out: {result["structural_zeros"] / g:.2f} GMACs with structural zeros of '
                     'fused kernels (MPViT: block-diagonal attention, zero-padded CRPE kernels).')
    if result['uncounted_ops']:
        ops = Counter(result['uncounted_ops']).most_common()
        lines.append('Counted as 0 (no MACs handle): '
                     + ', '.join(f'{op.replace("aten::", "")} x{k}' for op, k in ops))
    return '\n'.join(lines)


def get_flops(config: str, shape: Optional[List[int]] = None,
              cfg_options: Optional[dict] = None, json_out: Optional[str] = None) -> Dict[str, Any]:
    """Count the config's model at ``shape`` (``[H, W]``, ``[N]`` for N x N, None: the default of
    its toolkit), print the table, and write the counts as JSON to ``json_out`` if given."""
    size = parse_shape(shape)
    cfg = load_config(config, cfg_options)
    check_scope(cfg, config)
    result = measure(cfg, size or DEFAULT_SHAPES[cfg.default_scope])
    print(format_report(result), flush=True)
    if json_out:
        with open(json_out, 'w') as f:
            json.dump(result, f, indent=1)
    return result
