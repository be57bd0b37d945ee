#!/usr/bin/env bash
# Refresh requirements.lock: the exact versions of every package that `scripts/setup.sh` installs, as the newest
# releases pyproject's ranges allow today resolve. Installs into a fresh temporary virtualenv with plain pip (no
# lock), then writes `pip freeze`. Afterwards run `bash scripts/test.sh` (which installs from the new lock) and
# commit the lock only when it is green: the lock says what the tests passed with.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" -m venv "$work/venv"
pip() {
  local rc=0 out
  out=$("$work/venv/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1) || rc=$?
  printf '%s\n' "$out" | grep -v -e "is ignored: it is neither" -e '^$' >&2 || true
  return "$rc"
}
pip install --upgrade pip
pip install "torch==2.14.1" "torchvision==0.29.1"   # the same pair as setup.sh
pip install ".[dev]"
"$work/venv/bin/python" -m pip check
pyver=$("$work/venv/bin/python" -c "import platform; print(platform.python_version())")
today=$(date -u +%Y-%m-%d)
{
  echo "# The versions the tests ran with: made by scripts/lock.sh on $today (Python $pyver, $(uname -m))."
  echo "# scripts/setup.sh installs with it as pip constraints. Refresh: bash scripts/lock.sh && bash scripts/test.sh"
  "$work/venv/bin/python" -m pip freeze --all --exclude lookalike | grep -v '^-e ' | LC_ALL=C sort -f
} > requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
echo "lock: wrote requirements.lock ($(grep -vc '^#' requirements.lock) packages)" >&2
