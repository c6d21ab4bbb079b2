# DINO (4 scales) on COCO detection, 12 epochs (the recipe of every configs/dino_*_coco_12e.py):
# mmdet's own recipe, inherited (mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py: the ChannelMapper
# neck, the deformable encoder and decoder, the denoising queries, losses and matcher, the data,
# the schedule and the optimizer), its ResNet-50 replaced by the leaf's backbone returning levels
# 1..3 (strides 8, 16, 32: mmdet's ResNet-50 out_indices (1, 2, 3); the neck adds a fourth level
# at stride 64 from a stride-2 conv on the last), with the hooks and optimizer rules of
# query_heads.py.
#
# Recipe (mmdet 3.x): 16 images per iteration = 8 GPUs x 2 images (train_dataloader.batch_size
# is per GPU); AdamW lr 1e-4, weight decay 1e-4, gradient clipping at an L2 norm of 0.1, the
# backbone at 0.1 x lr, no decay on the package's no-decay names (and, by the layer-decay
# constructor's rule, on norms and biases); 12 epochs, lr x0.1 after epoch 11, no warm-up;
# 900 queries, 6 encoder and 6 decoder layers, 100 denoising queries; training images flipped and
# resized to a short side of 480..800 (long side <= 1333), or resized to 400..600, randomly
# cropped to 384..600 and resized as before; test at (1333, 800). The training set is
# ReportingCocoDataset (mmdet's CocoDataset logging the images filter_cfg leaves out; DINO keeps
# the images without annotations). Leaf configs add a backbone base (configs/_base_/backbones/)
# and pass its `backbone` and the channels of levels 1..3 to the neck.
_base_ = [
    'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',  # default_scope = 'mmdet'
    './query_heads.py',
]
custom_imports = dict(imports=['mmvit_plugin', 'mmvit_plugin.datasets'], allow_failed_imports=False)

num_gpus = 8  # documentation of the recipe: total batch = num_gpus x train_dataloader.batch_size
# mmdet's ResNet-50: replaced by the leaf's, returning the levels the neck reads (and building
# only their output norms, so no parameter is left without a gradient).
model = dict(backbone=dict(_delete_=True, out_indices=(1, 2, 3)))
train_dataloader = dict(dataset=dict(type='ReportingCocoDataset'))
optim_wrapper = dict(constructor='ViTLayerDecayOptimWrapperConstructor',
                     paramwise_cfg=_base_.query_head_paramwise_cfg)

# The backbone starts from the official ImageNet weights named in its backbone base's
# init_cfg; `load_from` takes a whole-model (DINO) checkpoint instead.
load_from = None
