#!/usr/bin/env bash
# Multi-GPU / multi-node testing with torchrun (on CPU over gloo when there is no GPU).
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options...]
# Environment: PYTHON (python), NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py options...]" >&2
  exit 1
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$DIR/torchrun.sh" "$GPUS" "$DIR/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
