"""Predicting on images and drawing the predictions, as tools/infer.py runs it: a colour overlay of
the predicted classes for segmentation configs (``default_scope='mmseg'``); boxes, class names,
scores and instance masks for detection configs (``default_scope='mmdet'``)."""
import os
import os.path as osp
from typing import Any, List, Optional

from .config import checkpoint_uri, load_config
from .runner import check_channels

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(path: str) -> List[str]:
    """``path`` if it is a file, else the images in the folder ``path`` (sorted)."""
    if osp.isfile(path):
        return [path]
    if osp.isdir(path):
        files = sorted(osp.join(path, f) for f in os.listdir(path)
                       if f.lower().endswith(IMAGE_EXTS))
        if not files:
            raise SystemExit(f'error: no images ({", ".join(IMAGE_EXTS)}) in {path}')
        return files
    raise SystemExit(f'error: {path} is neither an image file nor a folder')


def init_model(cfg: Any, checkpoint: str, device: str, scope: str) -> Any:
    """The config's model with ``checkpoint`` loaded, through mmseg's or mmdet's own API."""
    if scope == 'mmseg':
        from mmseg.apis import init_model as init_segmentor
        return init_segmentor(cfg, checkpoint, device=device)
    from mmdet.apis import init_detector
    return init_detector(cfg, checkpoint, device=device)


def infer(input: str, config: str, checkpoint: str, out_dir: str = 'infer_out',
          device: Optional[str] = None, score_thr: float = 0.3, opacity: float = 0.5,
          limit: int = 0, cfg_options: Optional[dict] = None) -> int:
    """Predict on ``input`` (an image or a folder of images) and write one picture per image into
    ``out_dir``. ``checkpoint`` is a path or URI, loaded weights-only; it must fill the model."""
    import mmcv
    import torch

    cfg = load_config(config, cfg_options)
    checkpoint = checkpoint_uri(checkpoint, 'checkpoint')
    device = device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    scope = cfg.get('default_scope', 'mmseg')
    images = list_images(input)
    if limit > 0:
        images = images[:limit]
    os.makedirs(out_dir, exist_ok=True)

    if scope not in ('mmseg', 'mmdet'):
        raise SystemExit(f'error: default_scope {scope!r}: only mmseg and mmdet configs are supported')
    from mmvit_plugin.checkpoint import CheckpointError
    from mmvit_plugin.engine import load_purpose
    try:
        with load_purpose('evaluate'):  # predictions need every tensor of the model
            model = init_model(cfg, checkpoint, device, scope)
    except CheckpointError as err:
        raise SystemExit(f'error: {err}') from None
    if scope == 'mmseg':
        from mmseg.apis import inference_model
        from mmseg.visualization import SegLocalVisualizer
        visualizer = SegLocalVisualizer(name='mmvit_infer', alpha=opacity)
        predict = lambda img: inference_model(model, img)  # noqa: E731
        draw_kwargs = dict(with_labels=True)
    else:
        from mmdet.apis import inference_detector
        from mmdet.visualization import DetLocalVisualizer
        visualizer = DetLocalVisualizer(name='mmvit_infer')
        predict = lambda img: inference_detector(model, img)  # noqa: E731
        draw_kwargs = dict(pred_score_thr=score_thr)
    check_channels(model)
    visualizer.dataset_meta = model.dataset_meta

    for i, path in enumerate(images):
        result = predict(path)
        img = mmcv.imread(path, channel_order='rgb')
        out_file = osp.join(out_dir, osp.splitext(osp.basename(path))[0] + '.png')
        visualizer.add_datasample(osp.basename(path), img, data_sample=result, draw_gt=False,
                                  draw_pred=True, show=False, out_file=out_file, **draw_kwargs)
        print(f'[{i + 1}/{len(images)}] {path} -> {out_file}', flush=True)
    return 0
