#!/usr/bin/env bash
# Mask2Former on the toy ADE20K set, CPU only (what `make demo-mask2former` runs): the data of
# `make demo` -> train Mask2Former + a small CSWin (configs/toy/mask2former_cswin_toy.py, mmseg's
# Mask2Former head with its deformable-attention pixel decoder) with tools/train.py -> evaluate mIoU
# with tools/test.py -> picture of predictions beside ground truth -> summary. Exits non-zero
# when mIoU < MIN_MIOU. Seeded and deterministic like scripts/demo.sh, whose settings and helpers
# it uses (README: measured time and mIoU).
#
# Variables: as scripts/demo.sh (PYTHON, DATA_DIR, SEED, MIN_MIOU, SEG_ITERS: iterations, default
# the toy config's; up to 50, the warm-up takes the first half), and WORK_DIR (default
# work_dirs/demo_mask2former).
set -euo pipefail
WORK_DIR="${WORK_DIR:-work_dirs/demo_mask2former}"
DEMO_SOURCE_ONLY=1 source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/demo.sh"

M2F_CFG=configs/toy/mask2former_cswin_toy.py
M2F_WORK="$WORK_DIR/mask2former"
if [ -n "${SEG_ITERS:-}" ] && [ "$SEG_ITERS" -le 50 ]; then  # shorter than the 50-iteration warm-up
  SEG_OPTS+=(param_scheduler.0.end=$(( SEG_ITERS / 2 )) param_scheduler.1.begin=$(( SEG_ITERS / 2 )))
fi

mkdir -p "$WORK_DIR"
step "1/4 toy ADE20K data -> $SEG_DATA"
"$PYTHON" tools/make_toy_data.py --kind ade --out "$SEG_DATA" --train 240 --val 40 --seed "$SEED"

train_and_test "$M2F_CFG" "$M2F_WORK" "2/4 train Mask2Former + CSWin ($M2F_CFG) -> $M2F_WORK" \
  "3/4 evaluate the segmentor on the toy validation set" "${SEG_OPTS[@]}"
MIOU=$(metric "$M2F_WORK/metrics.json" mIoU)

step "4/4 picture: ground truth | prediction"
tile "$M2F_WORK/vis" "$WORK_DIR/mask2former_gt_vs_pred.png" \
  "toy ADE20K val: ground truth | Mask2Former+CSWin prediction (mIoU $MIOU)"

ELAPSED=$(( $(date +%s) - START ))
cat <<SUMMARY | tee "$WORK_DIR/summary.txt"

== mmvit_plugin demo: Mask2Former (toy data, CPU) ==
segmentation  Mask2Former + CSWin  mIoU  $MIOU %   (bar >= $MIN_MIOU %)
picture       $WORK_DIR/mask2former_gt_vs_pred.png
wall time     $(( ELAPSED / 60 )) min $(( ELAPSED % 60 )) s
SUMMARY
"$PYTHON" -c "import sys; sys.exit(0 if float('$MIOU') >= float('$MIN_MIOU') else 1)" \
  || { echo "demo-mask2former: mIoU $MIOU % is below the bar of $MIN_MIOU %" >&2; exit 1; }
