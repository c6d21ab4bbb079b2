#!/usr/bin/env bash
# The GPU check in one command: set up (make install), then tools/gpu_check.py.
#
#   scripts/gpu_check.sh [OUT_DIR] [gpu_check.py options]     (OUT_DIR default: work_dirs/gpu_check)
#   VENV=/path/to/venv scripts/gpu_check.sh                   # a venv of your own (installed into
#                                                             # if needed, as make install does)
#
# Writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.md; exit status 0 when every check passed,
# 1 when one failed, 2 when there is no GPU to check (nothing is installed then).
#
# Time on one H200 (estimated: not yet run on a GPU): the check itself about 4 minutes, under 5
# (its benchmark step is stopped after --benchmark-timeout, default 240 s). The first `make install`
# on a fresh machine
# comes before it: torch with its CUDA libraries (~3 GB download) and mmcv 2.1.0 compiled with
# its CUDA ops for the visible GPU's architecture, which needs nvcc (the CUDA toolkit of torch's
# CUDA version) and takes roughly 10-20 minutes with MAX_JOBS = all cores (set here unless given;
# estimated, not yet measured). Later runs find the venv installed and start at once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
# OUT_DIR: the first argument unless it is an option; relative to where the script is called from.
OUT_DIR="$ROOT/work_dirs/gpu_check"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  OUT_DIR="$1"
  shift
fi
case "$OUT_DIR" in /*) ;; *) OUT_DIR="$PWD/$OUT_DIR" ;; esac

say() { printf '[gpu_check] %s\n' "$*"; }
refuse() { printf '[gpu_check] %s\n' "$*" >&2; exit 2; }

# 1. A GPU, before anything is installed. An installed venv's torch is asked (it honours
#    CUDA_VISIBLE_DEVICES); without one, nvidia-smi is.
case "${CUDA_VISIBLE_DEVICES-unset}" in
  ""|-1) refuse "no CUDA GPU: CUDA_VISIBLE_DEVICES='${CUDA_VISIBLE_DEVICES}' hides every GPU. This check needs one NVIDIA GPU." ;;
esac
torch_sees() {  # "gpu", or what the venv's torch is; fails without torch
  "$VENV/bin/python" - <<'PY'
import torch
if torch.cuda.is_available():
    print('gpu')
else:
    print(f'torch {torch.__version__}, built with CUDA {torch.version.cuda or "none"}')
PY
}
if [ -x "$VENV/bin/python" ] && TORCH_SEES="$(torch_sees 2>/dev/null)"; then
  if [ "$TORCH_SEES" != gpu ]; then
    refuse "no CUDA GPU: torch in $VENV sees none ($TORCH_SEES). This check needs one NVIDIA GPU; a dry run on CPU: $VENV/bin/python tools/gpu_check.py OUT_DIR --device cpu --quick"
  fi
elif ! { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; }; then
  refuse "no CUDA GPU: nvidia-smi lists none (or is not installed). This check needs one NVIDIA GPU."
fi

# 2. Set up. make install is a no-op when the venv is up to date. Otherwise, unless the venv's
#    mmcv already has its CUDA ops or a wheel with them is cached, it compiles them, which needs
#    nvcc: say so now rather than after the torch download.
cd "$ROOT"
MMCV_CACHE="${MMCV_CACHE:-$HOME/.cache/mmvit_plugin/wheels}"
have_cuda_mmcv() {
  "$VENV/bin/python" -c 'import sys; from mmcv.ops import get_compiling_cuda_version as v
sys.exit(v() == "not available")' 2>/dev/null \
    || ls "$MMCV_CACHE"/*-cudaops/mmcv-2.1.0-*.whl >/dev/null 2>&1
}
if ! make -q install VENV="$VENV" 2>/dev/null; then
  if ! have_cuda_mmcv && ! command -v nvcc >/dev/null \
      && [ ! -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then
    refuse "the install must compile mmcv's CUDA ops and finds no nvcc (PATH, \$CUDA_HOME or /usr/local/cuda). Install the CUDA toolkit matching torch's CUDA and set CUDA_HOME, or pass VENV= of an installed venv."
  fi
  say "installing into $VENV (first time: about 10-20 minutes, mostly compiling mmcv's CUDA ops)"
  MAX_JOBS="${MAX_JOBS:-$(nproc)}" make install VENV="$VENV"
fi

# 3. The check.
say "running tools/gpu_check.py $OUT_DIR $*"
exec "$VENV/bin/python" tools/gpu_check.py "$OUT_DIR" "$@"
