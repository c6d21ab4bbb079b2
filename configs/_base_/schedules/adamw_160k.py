# 160k iterations (mmseg's schedule_160k.py: validation and checkpoints every 16k) with the AdamW
# of the official UperNet recipes: lr 6e-5, betas (0.9, 0.999), weight decay 0.01 (the parameters
# without decay: upernet_ade20k_160k.py sets vit_common.py's rules); linear warm-up over 1500
# iterations, then poly decay (power 1) to 0 at 160k.
_base_ = ['mmseg::_base_/schedules/schedule_160k.py']

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
# The learning rate above is for 16 images per iteration; `tools/train.py --auto-scale-lr`
# rescales it linearly to the run's total batch (GPUs x batch_size).
auto_scale_lr = dict(enable=False, base_batch_size=16)
