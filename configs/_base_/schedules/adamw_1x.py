# 1x: 12 epochs (mmdet's schedule_1x.py) with the AdamW of the official Swin detection recipes
# (CSWin and MPViT follow them): lr 1e-4, betas (0.9, 0.999), weight decay 0.05 (the parameters
# without decay: coco_1x.py sets vit_common.py's rules); lr x0.1 after epochs 8 and 11, linear
# warm-up over the first 1000 iterations. coco_3x.py makes it 36 epochs.
_base_ = ['mmdet::_base_/schedules/schedule_1x.py']

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1),
]
# The learning rate above is for 16 images per iteration; `tools/train.py --auto-scale-lr`
# rescales it linearly to the run's total batch (GPUs x batch_size).
auto_scale_lr = dict(enable=False, base_batch_size=16)
