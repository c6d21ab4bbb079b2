# ADE20K at crop 512 (mmseg's ade20k.py): training images resized to (2048, 512) x 0.5..2.0 and
# cropped to 512, test images resized to test_scale (2048, 512) keeping the ratio; 2 images per GPU
# for training (x 8 GPUs = 16 per iteration), 1 for testing.
_base_ = ['mmseg::_base_/datasets/ade20k.py']

crop_size = (512, 512)
test_scale = (2048, 512)

# Multi-scale + flip as the papers ran it (mmseg 0.x MultiScaleFlipAug, img_scale=(2048, 512),
# img_ratios 0.5..1.75, flip): each scale is test_scale x ratio, keeping the aspect ratio. (mmseg
# 1.x's own ade20k tta_pipeline scales the original image by the ratio instead, which differs
# for images that are not 512 pixels on their short side.) Another test scale (crop 640, the toy
# configs) replaces the Resize steps, tta_pipeline[1].transforms[0], and keeps the rest.
tta_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='Resize', scale=(int(test_scale[0] * r), int(test_scale[1] * r)),
                   keep_ratio=True) for r in tta_ratios],
             [dict(type='RandomFlip', prob=0., direction='horizontal'),
              dict(type='RandomFlip', prob=1., direction='horizontal')],
             [dict(type='LoadAnnotations', reduce_zero_label=True)],
             [dict(type='PackSegInputs')],
         ]),
]

train_dataloader = dict(batch_size=2)  # per GPU; x 8 GPUs = 16 images per iteration
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
