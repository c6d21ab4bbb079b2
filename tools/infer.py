#!/usr/bin/env python
"""Predict on an image or a folder of images and save pictures of the predictions.

Segmentation configs (``default_scope='mmseg'``): a colour overlay of the predicted classes.
Detection configs (``default_scope='mmdet'``): boxes, class names, scores and instance masks.

Examples::

    python tools/infer.py demo.jpg configs/upernet_cswin_t_ade20k.py ckpt.pth --out-dir vis
    python tools/infer.py data/toy_coco/val2017 configs/toy/mask_rcnn_cswin_toy.py ckpt.pth \\
        --out-dir vis --score-thr 0.5

CKPT is a local path or any URI mmengine reads (https://, s3://, ...), loaded weights-only.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from train import _dict_action, check_channels, checkpoint_uri, load_config  # noqa: E402

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw predicted masks/boxes over images')
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='a whole-model checkpoint: a path, or any URI '
                        'load_from takes (https://, s3://, ...)')
    parser.add_argument('--out-dir', default='infer_out', help='where the pictures go')
    parser.add_argument('--device', default=None, help="e.g. 'cpu', 'cuda:0' (default: cuda if any)")
    parser.add_argument('--score-thr', type=float, default=0.3, help='detection: lowest score drawn')
    parser.add_argument('--opacity', type=float, default=0.5, help='segmentation: overlay opacity')
    parser.add_argument('--limit', type=int, default=0, help='at most this many images (0: all)')
    parser.add_argument('--cfg-options', nargs='+', default={}, action=_dict_action(),
                        help='override config entries, key=value pairs')
    return parser.parse_args(argv)


def list_images(path: str):
    if osp.isfile(path):
        return [path]
    if osp.isdir(path):
        files = sorted(osp.join(path, f) for f in os.listdir(path)
                       if f.lower().endswith(IMAGE_EXTS))
        if not files:
            raise SystemExit(f'error: no images ({", ".join(IMAGE_EXTS)}) in {path}')
        return files
    raise SystemExit(f'error: {path} is neither an image file nor a folder')


def build_model(cfg, checkpoint: str, device: str, scope: str):
    """The config's model with ``checkpoint`` loaded, through mmseg's or mmdet's own API."""
    if scope == 'mmseg':
        from mmseg.apis import init_model
        return init_model(cfg, checkpoint, device=device)
    from mmdet.apis import init_detector
    return init_detector(cfg, checkpoint, device=device)


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmcv
    import torch

    cfg = load_config(args.config, args.cfg_options)
    checkpoint = checkpoint_uri(args.checkpoint, 'checkpoint')
    device = args.device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    scope = cfg.get('default_scope', 'mmseg')
    images = list_images(args.input)
    if args.limit > 0:
        images = images[:args.limit]
    os.makedirs(args.out_dir, exist_ok=True)

    if scope not in ('mmseg', 'mmdet'):
        raise SystemExit(f'error: default_scope {scope!r}: only mmseg and mmdet configs are supported')
    from mmvit_plugin.checkpoint import CheckpointError
    from mmvit_plugin.engine import load_purpose
    try:
        with load_purpose('evaluate'):  # predictions need every tensor of the model
            model = build_model(cfg, checkpoint, device, scope)
    except CheckpointError as err:
        raise SystemExit(f'error: {err}') from None
    if scope == 'mmseg':
        from mmseg.apis import inference_model
        from mmseg.visualization import SegLocalVisualizer
        visualizer = SegLocalVisualizer(name='mmvit_infer', alpha=args.opacity)
        predict = lambda img: inference_model(model, img)  # noqa: E731
        draw_kwargs = dict(with_labels=True)
    else:
        from mmdet.apis import inference_detector
        from mmdet.visualization import DetLocalVisualizer
        visualizer = DetLocalVisualizer(name='mmvit_infer')
        predict = lambda img: inference_detector(model, img)  # noqa: E731
        draw_kwargs = dict(pred_score_thr=args.score_thr)
    check_channels(model)
    visualizer.dataset_meta = model.dataset_meta

    for i, path in enumerate(images):
        result = predict(path)
        img = mmcv.imread(path, channel_order='rgb')
        out_file = osp.join(args.out_dir, osp.splitext(osp.basename(path))[0] + '.png')
        visualizer.add_datasample(osp.basename(path), img, data_sample=result, draw_gt=False,
                                  draw_pred=True, show=False, out_file=out_file, **draw_kwargs)
        print(f'[{i + 1}/{len(images)}] {path} -> {out_file}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
