# The multi-scale + random-crop training augmentation of the Swin, CSWin and MPViT papers'
# 3x COCO recipes (from DETR / Sparse R-CNN): the image is either resized to a short side drawn
# from 480..800 (step 32, long side <= 1333), or resized to a short side of 400/500/600, randomly
# cropped to 384..600 pixels a side, then resized as before. Only variables: coco_3x.py and
# retinanet_coco_3x.py put detr_multi_scale_crop into their training pipelines.
multi_scales = [(1333, s) for s in range(480, 801, 32)]
detr_multi_scale_crop = dict(
    type='RandomChoice',
    transforms=[
        [dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True)],
        [
            dict(type='RandomChoiceResize', scales=[(1333, 400), (1333, 500), (1333, 600)],
                 keep_ratio=True),
            dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                 allow_negative_crop=True),
            dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True),
        ],
    ])
