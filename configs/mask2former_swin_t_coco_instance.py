# Mask2Former + Swin-T on COCO instance segmentation: mmdet's Mask2Former recipe, 50 epochs
# (368,750 iterations, lr x0.1 after 327,778 and 355,092), large-scale jittering at 1024;
# 16 images per iteration (8 GPUs x 2 images), AdamW lr 1e-4 / wd 0.05, backbone lr x0.1.
# Published box AP / mask AP: 47.7 / 44.7 (mmdet 3.x,
#   mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco, the same ImageNet-1K weights;
#   open-mmlab/mmdetection configs/mask2former (metafile.yml)).
# Train: tools/dist_train.sh configs/mask2former_swin_t_coco_instance.py 8
_base_ = ['./_base_/mask2former_coco_instance.py', './_base_/backbones/swin_t.py']

model = dict(
    backbone=dict(_base_.backbone, drop_path_rate=0.3),  # mmdet's Mask2Former Swin recipe
    panoptic_head=dict(in_channels=_base_.backbone_channels))
