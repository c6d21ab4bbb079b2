# Scale-out mixin: mmengine's FlexibleRunner with DeepSpeedStrategy (ZeRO stage 3: parameters,
# gradients and optimizer state sharded over the ranks), for the large variants
# (configs/scaleout/*_deepspeed.py). Needs the
# `deepspeed` package, which this repository does not install (it is not in
# scripts/requirements.txt: pip install deepspeed into the venv where you want it); without it,
# mmengine stops when it builds the strategy ("DeepSpeed is not installed"). A leaf lists it after
# the config it turns into a DeepSpeed run, and sets the optimizer wrapper (a base cannot: both
# bases would define optim_wrapper) and the backbone's activation checkpointing:
#     _base_ = ['../upernet_swin_l_in22k_ade20k_640.py', '../_base_/runtime/deepspeed.py']
#     model = dict(backbone=dict(with_cp=True))
#     optim_wrapper = dict(type='DeepSpeedOptimWrapper')
#   - fp32 as the recipes (bf16: --cfg-options strategy.bf16.enabled=True); DeepSpeed's optimizer
#     wrapper takes no clip_grad: gradient clipping goes in strategy.gradient_clipping.
#   - inputs_to_half: which inputs DeepSpeed casts when fp16/bf16 is on (the images).
# Launch: tools/dist_train.sh CONFIG NUM_GPUS. Checkpoints: mmengine's DeepSpeedStrategy writes a
# whole-model file on rank 0 (exclude_frozen_parameters off). Not run here (no deepspeed, no GPU).
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    zero_optimization=dict(
        stage=3,
        allgather_partitions=True,
        reduce_scatter=True,
        allgather_bucket_size=50000000,
        reduce_bucket_size=50000000,
        overlap_comm=True,
        contiguous_gradients=True,
        cpu_offload=False),
    bf16=dict(enabled=False),
    inputs_to_half=['inputs'])
