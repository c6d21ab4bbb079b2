#!/usr/bin/env bash
# Creates .venv with the OpenMMLab 2.x stack and mmvit_plugin (editable).
#
# Variables:
#   VENV           where the venv goes (default: .venv in the repo root)
#   PYTHON         the interpreter that creates it (default: python3)
#   TORCH_SPEC     pip requirement(s) for torch; set e.g. TORCH_SPEC=skip to keep the torch that
#                  the venv already has (CUDA users bring their own), default
#                  "torch==2.14.1 torchvision==0.29.1"
#   MMCV_CACHE     where the compiled mmcv wheel is cached, keyed by torch version
#                  (default: ~/.cache/mmvit_plugin/wheels)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
MMCV_VERSION=2.1.0
MMCV_CACHE="${MMCV_CACHE:-$HOME/.cache/mmvit_plugin/wheels}"

log() { printf '[install] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
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
from importlib.metadata import version
print(open(sys.argv[1]).read().strip())
for name in ('torch', 'torchvision'):
    try:
        print(f'{name}=={version(name)}')
    except Exception:
        pass
PY
pip_install() { "${PIP[@]}" install -c "$CONSTRAINTS" "$@"; }
# pkg_resources (mmcv's setup.py, `_base_ = ['mmseg::...']` inheritance) left setuptools in 70;
# torch declares setuptools>=77 but runs without it, so pip's conflict warning is expected.
pin_old_setuptools() { "${PIP[@]}" install 'setuptools<70' 2>&1 | grep -v "dependency conflicts\|requires setuptools\|dependency resolver" || true; }
log "build tools"
pip_install wheel ninja
pin_old_setuptools
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)')"
log "torch $TORCH_VERSION"

pip_install 'mmengine==0.10.7' 'numpy<2.3'

# The compiled ops load and compute (a build against other torch headers loads, then misreads tensors).
have_mmcv_ops() {
  "$PY" - <<'PY' 2>/dev/null
import torch
import mmcv
from mmcv.ops import nms, roi_align
assert mmcv.__version__ == '2.1.0', mmcv.__version__
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]])
assert nms(boxes, torch.tensor([.9, .8, .7]), .5)[1].tolist() == [0, 2]
feats = torch.arange(16.).view(1, 1, 4, 4)
pooled = roi_align(feats, torch.tensor([[0., 0., 0., 4., 4.]]), (1, 1), 1.0, 2, 'avg', True)
assert abs(pooled.item() - feats.mean().item()) < 1e-4, pooled
PY
}

if ! have_mmcv_ops; then
  # The ops are built against this exact torch: a wheel for another version fails to load.
  KEY="torch${TORCH_VERSION//+/_}-$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
  WHEEL_DIR="$MMCV_CACHE/$KEY"
  WHEEL="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)"
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
    pip_install opencv-python-headless 'addict' 'packaging' 'pyyaml' 'yapf' 'Pillow'
    mkdir -p "$WHEEL_DIR"
    # Without --no-build-isolation the build cannot see torch and silently skips the ops.
    # ninja (from the venv's bin) compiles MAX_JOBS files at a time.
    (cd "$SRC" && PATH="$VENV/bin:$PATH" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "$PY" -m pip wheel --no-deps \
        --no-build-isolation -w "$WHEEL_DIR" . )
    WHEEL="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl | head -n1)"
  else
    log "mmcv wheel from cache: $WHEEL"
  fi
  pip_install --no-deps --force-reinstall "$WHEEL"
  pip_install opencv-python-headless addict packaging pyyaml yapf Pillow
  if ! have_mmcv_ops; then
    rm -f "$WHEEL"
    echo "[install] mmcv's compiled ops fail their check with torch $TORCH_VERSION; removed $WHEEL" >&2
    exit 1
  fi
fi

log "mmsegmentation, mmdet and the rest"
pip_install 'mmsegmentation==1.2.2' 'mmdet==3.3.0' 'timm' 'einops' 'ftfy' 'regex' \
  'pycocotools>=2.0.8' 'pytest' 'fvcore' 'scipy' 'shapely' 'terminaltables' 'prettytable'
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
