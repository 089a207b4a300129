#!/usr/bin/env bash
# The CUDA device check in one call on a fresh GPU machine without network (README, "Running on a CUDA GPU").
# Here, once: `make cuda-carry` (wheels + reference fixtures into .cuda_carry/, git-ignored). There, with .cuda_carry
# carried: `bash scripts/cuda_check.sh [--out DIR] [cuda_check.py options]`. Installs the carried wheels of
# requirements-cuda-carry.txt (no index, no dependencies: the list is complete) into a private folder on PYTHONPATH,
# leaving the machine's own torch / transformers untouched, then runs scripts/cuda_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -d .cuda_carry/wheels ]; then
    SITE=${CUDA_CHECK_SITE:-/tmp/cuda_check_site}
    "$PY" -m pip install -q --no-index --find-links .cuda_carry/wheels --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$SITE" -r requirements-cuda-carry.txt
    export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
    echo "note: no .cuda_carry/wheels (make cuda-carry): using the packages installed here" >&2
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
exec "$PY" scripts/cuda_check.py "$@"
