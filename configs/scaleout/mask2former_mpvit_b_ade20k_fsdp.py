# Mask2Former + MPViT-B, ADE20K 512: the recipe of mask2former_mpvit_b_ade20k.py (same model, data,
# schedule, 16 images per iteration), trained with FlexibleRunner + FSDP
# (configs/_base_/runtime/fsdp.py: one FSDP unit per backbone block and per transformer layer of the
# head's pixel decoder and decoder; full-state checkpoints; gradient clipping by the norm of the
# whole model) and activation checkpointing in the backbone (with_cp=True: each block recomputed in
# backward). Checkpoints are ordinary whole-model files: test them with the config it inherits
# (configs/, without _fsdp).
# Train: tools/dist_train.sh configs/scaleout/mask2former_mpvit_b_ade20k_fsdp.py 8
_base_ = ['../mask2former_mpvit_b_ade20k.py', '../_base_/runtime/fsdp.py']

model = dict(backbone=dict(with_cp=True))
optim_wrapper = dict(type='FSDPOptimWrapper')  # clip_grad over the whole model
strategy = dict(model_wrapper=dict(auto_wrap_policy=dict(
    module_names=['DeformableDetrTransformerEncoderLayer', 'Mask2FormerTransformerDecoderLayer'])))
