# MPViT's Detectron2 training recipe (youngwanLEE/MPViT, detectron2/configs/Base-RetinaNet.yaml
# and Base-RCNN-FPN.yaml) where it differs from the Swin recipe of coco_1x.py / coco_3x.py:
# gradient clipping at a total L2 norm of 1.0, warm-up from 0.01 x lr over 1000 iterations, the
# training images without annotations kept (FILTER_EMPTY_ANNOTATIONS: False), and the 3x steps at
# 210k and 250k of 270k iterations of 16 images, in epochs: after 28 and 33 (210/270 x 36 = 28.0,
# 250/270 x 36 = 33.3; 1x: 60k, 80k of 90k = epochs 8, 11, as coco_1x.py). Only variables:
# retinanet_coco_{1x,3x}.py and mask_rcnn_mpvit_coco_{1x,3x}.py put them in place.
mpvit_clip_grad = dict(max_norm=1.0, norm_type=2)
mpvit_warmup = dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=1000)
mpvit_milestones_3x = [28, 33]
mpvit_filter_cfg = dict(filter_empty_gt=False, min_size=32)
