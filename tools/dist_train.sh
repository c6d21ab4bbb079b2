#!/usr/bin/env bash
# Multi-GPU / multi-node training with torchrun (on CPU over gloo when there is no GPU).
#   tools/dist_train.sh CONFIG GPUS [train.py options...]
# Environment: PYTHON (python), NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500).
# Example, 2 nodes x 8 GPUs:
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 tools/dist_train.sh configs/upernet_cswin_t_ade20k.py 8
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 tools/dist_train.sh configs/upernet_cswin_t_ade20k.py 8
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG GPUS [train.py options...]" >&2
  exit 1
fi
CONFIG=$1
GPUS=$2
shift 2
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$DIR/torchrun.sh" "$GPUS" "$DIR/train.py" "$CONFIG" --launcher pytorch "$@"
