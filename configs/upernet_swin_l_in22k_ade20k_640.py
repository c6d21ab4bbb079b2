# UperNet + Swin-L (ImageNet-22K weights) on ADE20K: 160k iterations, crop 640x640, 16 images
# per iteration (8 GPUs x 2 images), AdamW lr 6e-5 / wd 0.01, warm-up 1500 iterations then poly;
# test: 'whole' mode at (2560, 640); --tta: multi-scale 0.5-1.75 + flip. No official config of
# this result was released: the 512 recipe at crop 640 (the papers' description).
# Published mIoU: 52.05 / 53.53; 234M params, 3230G FLOPs (microsoft/Swin-Transformer README).
# Train: tools/dist_train.sh configs/upernet_swin_l_in22k_ade20k_640.py 8
_base_ = ['./_base_/upernet_ade20k_640_160k.py']

# Backbone weights: the official release (ImageNet-22K, 384, window 12;
# microsoft/Swin-Transformer README).
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL; from scratch:
# --cfg-options model.backbone.init_cfg.checkpoint=None.
model = dict(
    backbone=dict(
        _delete_=True,
        type='Swin',
        arch='large',
        window_size=12,  # the window of the 384 weights
        drop_path_rate=0.3,  # not published; our choice
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth')),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768))
