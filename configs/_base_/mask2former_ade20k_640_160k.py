# Mask2Former on ADE20K, 160k iterations, crop 640: the recipe of mmseg's ImageNet-22K Swin results
# (mmseg::mask2former/mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640.py) for
# configs/mask2former_*_in22k_ade20k_640.py. mmseg's 640 recipe is its 512 one (inherited by
# mask2former_ade20k_160k.py) with the data of its ade20k_640x640.py: training images resized to a
# short side of 320..1280 (max 2560) and cropped to 640, test images resized to (2560, 640)
# keeping the ratio. Those numbers are set here on the 512 pipelines, so the head, schedule and
# optimizer stay inherited (tests/test_configs_query_heads.py compares the result with mmseg's
# 640 config).
_base_ = ['./mask2former_ade20k_160k.py']

crop_size = (640, 640)
test_scale = (2560, 640)
# test_cfg: mmseg's 640 recipe pads test images to the batch only (its 512 one, to 32 pixels).
data_preprocessor = dict(size=crop_size, test_cfg=None)
model = dict(data_preprocessor=data_preprocessor)

# mmseg's pipelines, with the 640 sizes: short sides 0.5..2.0 x 640, at most 2560 long.
train_pipeline = [
    dict(step, scales=[int(crop_size[0] * x * 0.1) for x in range(5, 21)], max_size=test_scale[0])
    if step.type == 'RandomChoiceResize' else
    dict(step, crop_size=crop_size) if step.type == 'RandomCrop' else step
    for step in _base_.train_pipeline
]
test_pipeline = [
    dict(step, scale=test_scale) if step.type == 'Resize' else step
    for step in _base_.test_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
