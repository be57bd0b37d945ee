#!/usr/bin/env bash
# Set up lookalike in ./.venv on a fresh machine (idempotent: a second run with nothing changed is instant), with the
# exact versions the tests ran with (requirements.lock, made by scripts/lock.sh; scripts/check_install.sh checks the
# newest versions pyproject allows instead).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.lookalike-setup
want=$(cat pyproject.toml requirements.lock scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# pip, quiet, without the noise of this machine's empty local indexes; a failed install fails the setup
pip() {
  local rc=0 out
  out=$(.venv/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1) || rc=$?
  printf '%s\n' "$out" | grep -v -e "is ignored: it is neither" -e '^$' >&2 || true
  return "$rc"
}
pip install -c requirements.lock --upgrade pip
# torch first, pinned, so nothing below pulls another build; this pair also runs on a CPU-only machine.
pip install -c requirements.lock "torch==2.14.1" "torchvision==0.29.1"
pip install -c requirements.lock -e ".[dev]"
.venv/bin/python -c "import torch, torchvision, facenet_pytorch, faiss, cv2, lookalike" \
  || { echo "setup: import check failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "setup: ready (.venv)" >&2
