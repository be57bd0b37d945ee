#!/usr/bin/env bash
# Set up lookalike in ./.venv on a fresh machine (idempotent: a second run with nothing changed is instant).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.lookalike-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither" || true; }
pip install --upgrade pip
# torch first, pinned, so nothing below pulls another build; this pair also runs on a CPU-only machine.
pip install "torch==2.14.1" "torchvision==0.29.1"
pip install -e ".[dev]"
.venv/bin/python -c "import torch, torchvision, facenet_pytorch, faiss, cv2, lookalike" \
  || { echo "setup: import check failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "setup: ready (.venv)" >&2
