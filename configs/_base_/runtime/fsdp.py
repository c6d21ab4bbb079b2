# Scale-out mixin: mmengine's FlexibleRunner with FSDPStrategy (PyTorch FullyShardedDataParallel),
# for the large variants (the leaves: configs/scaleout/*_fsdp.py). A leaf lists it after the config
# it turns into an FSDP run, and sets
# what a base cannot (mmengine refuses a key two bases of one file both define: optim_wrapper)
# and the backbone's activation checkpointing (each block recomputed in the backward pass;
# FSDP's own activation_checkpointing is not used):
#     _base_ = ['../upernet_swin_l_in22k_ade20k_640.py', '../_base_/runtime/fsdp.py']
#     model = dict(backbone=dict(with_cp=True))
#     optim_wrapper = dict(type='FSDPOptimWrapper')
#
# What FSDP does here: every block of the backbone (the classes its stage_blocks() list;
# mmvit_plugin.engine.fsdp.mmvit_block_wrap_policy) is its own FSDP unit, gathered only while it
# runs; the rest of the model (stem, merges, neck, heads) is the root unit. Parameters, gradients
# and optimizer state are sharded over the ranks (ShardingStrategy FULL_SHARD).
#   - use_orig_params=True: the optimizer sees the parameters under their own names, so the
#     recipes' paramwise_cfg (no weight decay on norms, position tables; lr multipliers) applies.
#   - state_dict_cfg='full': checkpoints are ordinary whole-model files gathered on rank 0 (CPU),
#     which tools/test.py / infer.py load with the config this one inherits (without _fsdp), and
#     which load_from / --resume read back on any number of ranks. 'local' would write one shard
#     per rank (a folder), readable only with the same number of ranks.
#   - FSDPOptimWrapper (the leaf's optim_wrapper.type): clip_grad by the norm of the whole model
#     (mmengine's OptimWrapper would clip each rank's shard by its own norm). The optimizer's
#     parameter groups are built on the plain model before FSDP wraps it (the plugin does this
#     for FSDPStrategy), so rules by name, shape and layer depth see the model's own parameters.
# Mixed precision (documented option, off by default: the recipes are fp32), e.g. bf16 compute
# with fp32 gradient reduction:
#     --cfg-options strategy.model_wrapper.mixed_precision.param_dtype=bfloat16 \
#         strategy.model_wrapper.mixed_precision.reduce_dtype=float32 \
#         strategy.model_wrapper.mixed_precision.buffer_dtype=float32
# (or the same dict in a leaf). --amp (AmpOptimWrapper, fp16 autocast with FSDP's sharded grad
# scaler) also works; it replaces FSDPOptimWrapper, so clip_grad then clips shard by shard.
#
# Launch: tools/dist_train.sh CONFIG NUM_GPUS (1 GPU works: FSDP over one rank still flattens and
# frees parameters per block); without a launcher, tools/train.py stops with an error saying so.
# Without GPUs the same runs over gloo on CPU (tools/dist_train.sh CONFIG 2). The fit rule
# (mmvit_plugin.engine.weight_loading) applies to FSDP's loads too.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='MMFullyShardedDataParallel',
        use_orig_params=True,
        auto_wrap_policy=dict(type='mmvit_block_wrap_policy')),
    state_dict_cfg='full')
