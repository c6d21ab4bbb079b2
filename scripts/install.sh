#!/usr/bin/env bash
# Creates the venv with the OpenMMLab 2.x stack and mmvit_plugin (editable).
#
# Variables:
#   VENV           where the venv goes, relative to the current directory or absolute
#                  (default: .venv in the repo root)
#   PYTHON         the interpreter that creates it (default: python3)
#   TORCH_SPEC     pip requirement(s) for torch; set e.g. TORCH_SPEC=skip to keep the torch that
#                  the venv already has (CUDA users bring their own), default
#                  "torch==2.14.1 torchvision==0.29.1"
#   MMCV_CACHE     where compiled mmcv wheels are cached (default: ~/.cache/mmvit_plugin/wheels),
#                  one folder per torch version, Python, torch's CUDA and the kind of ops compiled
#   FORCE_CUDA=1   compile mmcv's CUDA ops on a machine that sees no GPU (needs nvcc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
# Later steps run from other directories (the mmcv sdist): every path must be absolute.
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
MMCV_VERSION=2.1.0
MMCV_CACHE="${MMCV_CACHE:-$HOME/.cache/mmvit_plugin/wheels}"
case "$MMCV_CACHE" in /*) ;; *) MMCV_CACHE="$PWD/$MMCV_CACHE" ;; esac

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV" || die "could not create a venv at $VENV with $PYTHON"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

if [ "$TORCH_SPEC" != skip ]; then
  log "torch: $TORCH_SPEC"
  # shellcheck disable=SC2086
  "${PIP[@]}" install $TORCH_SPEC
fi
# Every later step keeps this torch: pip would otherwise "resolve" torch's own setuptools>=77
# requirement against our setuptools<70 by silently downgrading torch (and torchvision).
CONSTRAINTS="$VENV/mmvit-constraints.txt"
"$PY" - "$ROOT/scripts/constraints.txt" > "$CONSTRAINTS" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
print(open(sys.argv[1]).read().strip())
for name in ('torch', 'torchvision'):
    try:
        print(f'{name}=={version(name)}')
    except PackageNotFoundError:
        pass
PY
pip_install() { "${PIP[@]}" install -c "$CONSTRAINTS" "$@"; }
# pkg_resources (mmcv's setup.py, `_base_ = ['mmseg::...']` inheritance) left setuptools in 70.
# torch declares setuptools>=77 but runs without it: pip's conflict report about exactly that is
# expected and filtered; any failure of pip itself stops the install.
pin_old_setuptools() {
  local out
  if ! out="$("${PIP[@]}" install 'setuptools<70' 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "pip could not install setuptools<70"
  fi
  printf '%s\n' "$out" | grep -v "dependency conflicts\|requires setuptools\|dependency resolver" || true
}
log "build tools"
pip_install wheel ninja
pin_old_setuptools
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)')"
log "torch $TORCH_VERSION"

pip_install 'mmengine==0.10.7' 'numpy<2.3'

# What the wheel is built against, and so its cache folder: torch, Python, torch's CUDA, and
# whether mmcv's CUDA ops are compiled (mmcv's setup.py compiles them when torch sees a GPU or
# FORCE_CUDA=1). A CPU-only build is never reused on a GPU node, nor one for another CUDA.
KEY="$("$PY" - <<'PY'
import os, sys, torch
cuda_ops = torch.version.cuda is not None and (torch.cuda.is_available() or os.environ.get('FORCE_CUDA') == '1')
print(f"torch{torch.__version__.replace('+', '_')}-cp{sys.version_info[0]}{sys.version_info[1]}"
      f"-cuda{torch.version.cuda or 'none'}-{'cuda' if cuda_ops else 'cpu'}ops")
PY
)"

# The compiled ops load and compute (a build against other torch headers loads, then misreads
# tensors); where a GPU is visible they must also run on it.
have_mmcv_ops() {
  "$PY" - <<'PY'
import torch
import mmcv
from mmcv.ops import get_compiling_cuda_version, nms, roi_align
assert mmcv.__version__ == '2.1.0', f'mmcv {mmcv.__version__} is installed, not 2.1.0'
devices = ['cpu']
if torch.cuda.is_available():
    assert get_compiling_cuda_version() != 'not available', 'mmcv was built without its CUDA ops'
    devices.append('cuda')
for device in devices:
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]], device=device)
    keep = nms(boxes, torch.tensor([.9, .8, .7], device=device), .5)[1]
    assert keep.tolist() == [0, 2], f'nms on {device} returned {keep.tolist()}'
    feats = torch.arange(16., device=device).view(1, 1, 4, 4)
    rois = torch.tensor([[0., 0., 0., 4., 4.]], device=device)
    pooled = roi_align(feats, rois, (1, 1), 1.0, 2, 'avg', True)
    assert abs(pooled.item() - feats.mean().item()) < 1e-4, f'roi_align on {device} gave {pooled.item()}'
    print(f'mmcv ops check on {device}: nms and roi_align correct')
PY
}

if ! have_mmcv_ops 2>/dev/null; then
  WHEEL_DIR="$MMCV_CACHE/$KEY"
  WHEEL="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)"
  pip_install opencv-python-headless addict packaging pyyaml yapf Pillow
  if [ -z "$WHEEL" ]; then
    log "building mmcv $MMCV_VERSION with ops for $KEY (about 12 minutes on 2 cores, once)"
    pin_old_setuptools
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    "${PIP[@]}" download --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-$MMCV_VERSION.tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV_VERSION"
    # torch >= 2.13 headers need C++20; mmcv's setup.py pins an older standard.
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    # Built into a scratch folder first: an interrupted build leaves nothing in the cache.
    # Without --no-build-isolation the build cannot see torch and silently skips the ops;
    # ninja (from the venv's bin) compiles MAX_JOBS files at a time.
    (cd "$SRC" && PATH="$VENV/bin:$PATH" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "$PY" -m pip \
        --disable-pip-version-check wheel --no-deps --no-build-isolation -w "$BUILD/wheel" . )
    mkdir -p "$WHEEL_DIR"
    BUILT="$(ls "$BUILD"/wheel/mmcv-$MMCV_VERSION-*.whl)"
    mv "$BUILT" "$WHEEL_DIR/"
    WHEEL="$WHEEL_DIR/$(basename "$BUILT")"
  else
    log "mmcv wheel from cache: $WHEEL"
  fi
  pip_install --no-deps --force-reinstall "$WHEEL"
  if ! have_mmcv_ops; then
    rm -f "$WHEEL"
    die "mmcv's compiled ops fail their check with torch $TORCH_VERSION (above); removed $WHEEL, run the install again to rebuild it"
  fi
else
  log "mmcv $MMCV_VERSION with working ops already installed"
fi

log "mmsegmentation, mmdet and the rest"
pip_install -r "$ROOT/scripts/requirements.txt"
pip_install --no-deps -e "$ROOT"
pin_old_setuptools

log "checking the stack"
"$PY" - <<'PY'
import pkg_resources  # noqa: F401  (mm config inheritance needs it)
import mmcv, mmcv.ops, mmengine, mmseg, mmseg.models, mmdet, mmdet.models, torch
import mmvit_plugin

print(f'torch {torch.__version__} | mmengine {mmengine.__version__} | mmcv {mmcv.__version__} (ops) '
      f'| mmseg {mmseg.__version__} | mmdet {mmdet.__version__} | mmvit_plugin {mmvit_plugin.__version__}')
PY
touch "$VENV/.mmvit_installed"
log "done"
