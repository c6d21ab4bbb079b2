#!/usr/bin/env bash
# End-to-end demo on toy data, CPU only (what `make demo` runs):
#   1. toy ADE20K  -> train UperNet + CSWin (tools/train.py) -> evaluate mIoU (tools/test.py)
#      -> picture of predictions beside ground truth
#   2. toy COCO    -> train Mask R-CNN + CSWin -> evaluate box/mask AP -> picture
# About 10-15 minutes on 2 CPU cores. Exits non-zero when a figure misses its bar
# (segmentation mIoU >= 50 %, detection box AP >= 10 %). Data and training are seeded (SEED) and
# deterministic, so a machine repeats its figures; another CPU (other vector kernels, another
# thread count) sums in another order and its figures differ a little (README: measured spread).
#
# Variables: PYTHON (default: .venv/bin/python when present, else python), WORK_DIR
# (work_dirs/demo), DATA_DIR (data), SEED (0), SEG_ITERS / DET_EPOCHS (toy config defaults),
# MIN_MIOU (50), MIN_BOX_AP (10).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
WORK_DIR="${WORK_DIR:-work_dirs/demo}"
DATA_DIR="${DATA_DIR:-data}"
SEED="${SEED:-0}"
MIN_MIOU="${MIN_MIOU:-50}"
MIN_BOX_AP="${MIN_BOX_AP:-10}"
SEG_CFG=configs/toy/upernet_cswin_toy.py
DET_CFG=configs/toy/mask_rcnn_cswin_toy.py
SEG_DATA="$DATA_DIR/toy_ade"
DET_DATA="$DATA_DIR/toy_coco"
SEG_WORK="$WORK_DIR/seg"
DET_WORK="$WORK_DIR/det"

START=$(date +%s)
step() { printf '\n\033[1m[demo %4ss] %s\033[0m\n' "$(( $(date +%s) - START ))" "$*"; }

# Where the toy configs look for data, redirected to DATA_DIR.
SEG_OPTS=(train_dataloader.dataset.data_root="$SEG_DATA" val_dataloader.dataset.data_root="$SEG_DATA"
          test_dataloader.dataset.data_root="$SEG_DATA" randomness.seed="$SEED")
DET_OPTS=(train_dataloader.dataset.data_root="$DET_DATA/" val_dataloader.dataset.data_root="$DET_DATA/"
          test_dataloader.dataset.data_root="$DET_DATA/"
          val_evaluator.ann_file="$DET_DATA/annotations/instances_val2017.json"
          test_evaluator.ann_file="$DET_DATA/annotations/instances_val2017.json"
          randomness.seed="$SEED")
if [ -n "${SEG_ITERS:-}" ]; then
  SEG_OPTS+=(train_cfg.max_iters="$SEG_ITERS" train_cfg.val_interval="$SEG_ITERS"
             default_hooks.checkpoint.interval="$SEG_ITERS" param_scheduler.1.end="$SEG_ITERS")
fi
if [ -n "${DET_EPOCHS:-}" ]; then
  DET_OPTS+=(train_cfg.max_epochs="$DET_EPOCHS" train_cfg.val_interval="$DET_EPOCHS"
             default_hooks.checkpoint.interval="$DET_EPOCHS" param_scheduler.1.end="$DET_EPOCHS")
fi

# Tile the first pictures test.py --show-dir wrote (ground truth | prediction) into one file.
tile() {  # tile SHOW_DIR OUT_FILE TITLE
  "$PYTHON" - "$@" <<'PY'
import sys
from pathlib import Path
import cv2
import numpy as np
show_dir, out_file, title = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
files = sorted(p for p in show_dir.rglob('*') if p.suffix.lower() in ('.png', '.jpg'))[:6]
if not files:
    sys.exit(f'no pictures under {show_dir}')
tiles = [cv2.imread(str(f)) for f in files]
h = max(t.shape[0] for t in tiles)
w = max(t.shape[1] for t in tiles)
tiles = [cv2.copyMakeBorder(t, 3, 3 + h - t.shape[0], 3, 3 + w - t.shape[1], cv2.BORDER_CONSTANT,
                            value=(255, 255, 255)) for t in tiles]
cols = 2
while len(tiles) % cols:
    tiles.append(np.full_like(tiles[0], 255))
grid = np.concatenate([np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)], 0)
scale = max(1, round(1000 / grid.shape[1]))
grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
head = np.full((40, grid.shape[1], 3), 255, np.uint8)
(text_w, _), _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)
font = min(0.8, 0.95 * (grid.shape[1] - 16) / text_w)
cv2.putText(head, title, (8, 28), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 2, cv2.LINE_AA)
cv2.imwrite(out_file, np.concatenate([head, grid], 0))
print(f'wrote {out_file} ({len(files)} validation images)')
PY
}

metric() {  # metric METRICS_JSON KEY -> value in percent
  "$PYTHON" -c "import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(f'{v * (100 if v <= 1 else 1):.1f}')" "$1" "$2"
}

latest_ckpt() {  # the checkpoint mmengine's CheckpointHook recorded last
  cat "$1/last_checkpoint"
}

# train_and_test CONFIG WORK TRAIN_STEP TEST_STEP CFG_OPTION...: tools/train.py, then tools/test.py
# on its last checkpoint, pictures in WORK/vis and the metrics in WORK/metrics.json
train_and_test() {
  local cfg=$1 work=$2 train_step=$3 test_step=$4
  shift 4
  step "$train_step"
  "$PYTHON" tools/train.py "$cfg" --work-dir "$work" --cfg-options "$@"
  step "$test_step"
  rm -rf "$work/vis"
  "$PYTHON" tools/test.py "$cfg" "$(latest_ckpt "$work")" --work-dir "$work" \
    --show-dir "$work/vis" --metrics-out "$work/metrics.json" --cfg-options "$@"
}

# scripts/demo_mask2former.sh sources this file for the settings and helpers above, then runs
# its own steps.
if [ "${DEMO_SOURCE_ONLY:-0}" = 1 ]; then return 0; fi

mkdir -p "$WORK_DIR"
step "1/8 toy ADE20K data -> $SEG_DATA"
"$PYTHON" tools/make_toy_data.py --kind ade --out "$SEG_DATA" --train 240 --val 40 --seed "$SEED"

train_and_test "$SEG_CFG" "$SEG_WORK" "2/8 train UperNet + CSWin ($SEG_CFG) -> $SEG_WORK" \
  "3/8 evaluate the segmentor on the toy validation set" "${SEG_OPTS[@]}"
MIOU=$(metric "$SEG_WORK/metrics.json" mIoU)

step "4/8 picture: ground truth | prediction"
tile "$SEG_WORK/vis" "$WORK_DIR/seg_gt_vs_pred.png" "toy ADE20K val: ground truth | UperNet+CSWin prediction (mIoU $MIOU)"

step "5/8 toy COCO data -> $DET_DATA"
"$PYTHON" tools/make_toy_data.py --kind coco --out "$DET_DATA" --train 240 --val 40 --seed "$SEED"

train_and_test "$DET_CFG" "$DET_WORK" "6/8 train Mask R-CNN + CSWin ($DET_CFG) -> $DET_WORK" \
  "7/8 evaluate the detector on the toy validation set" "${DET_OPTS[@]}"
BOX_AP=$(metric "$DET_WORK/metrics.json" coco/bbox_mAP)
MASK_AP=$(metric "$DET_WORK/metrics.json" coco/segm_mAP)

step "8/8 picture: ground truth | prediction"
tile "$DET_WORK/vis" "$WORK_DIR/det_gt_vs_pred.png" "toy COCO val: ground truth | Mask R-CNN+CSWin prediction (box AP $BOX_AP)"

ELAPSED=$(( $(date +%s) - START ))
cat <<EOF | tee "$WORK_DIR/summary.txt"

== mmvit_plugin demo (toy data, CPU) ==
segmentation  UperNet + CSWin     mIoU     $MIOU %   (bar >= $MIN_MIOU %)
detection     Mask R-CNN + CSWin  box AP   $BOX_AP %   (bar >= $MIN_BOX_AP %)
                                  mask AP  $MASK_AP %
pictures      $WORK_DIR/seg_gt_vs_pred.png, $WORK_DIR/det_gt_vs_pred.png
wall time     $(( ELAPSED / 60 )) min $(( ELAPSED % 60 )) s
EOF
"$PYTHON" -c "import sys; sys.exit(0 if float('$MIOU') >= float('$MIN_MIOU') and float('$BOX_AP') >= float('$MIN_BOX_AP') else 1)" \
  || { echo "demo: a figure is below its bar" >&2; exit 1; }
