#!/usr/bin/env bash
# Install as a user does, both ways: build the wheel, install it with plain pip (the newest versions pyproject
# allows) into two fresh virtualenvs, check `pip check`, then index and query real photos from ../shared/data with
# each installed `lookalike` (an empty weights folder: the first use converts FaceNet CASIA, as for a new user):
#   torch:   `pip install lookalike[torch]` into a venv that has torch already (linked from .venv, see
#            scripts/torch_site.py, not gigabytes copied);
#   default: `pip install lookalike`, no torch at all; its size on disk is measured against README's 1.2 GB.
# Run by scripts/test.sh after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$PWD/.venv/bin/python"
DATA="${LOOKALIKE_DATA:-$PWD/../shared/data}"
work="$(mktemp -d)"
had_build=0; [ -e build ] && had_build=1
trap 'rm -rf "$work"; [ "$had_build" = 1 ] || rm -rf "$OLDPWD_ROOT/build"' EXIT
OLDPWD_ROOT="$PWD"

"$PY" -m pip wheel --no-deps -q -w "$work/dist" .
whl=$(ls "$work"/dist/lookalike-*.whl)
"$PY" -m venv "$work/venv"
site="$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$PY" scripts/torch_site.py "$work/torch" > "$site/torch-from-setup.pth"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$whl[torch]"
"$work/venv/bin/python" -m pip check
"$PY" -m venv "$work/plain"
"$work/plain/bin/python" -m pip install -q --disable-pip-version-check "$whl"
"$work/plain/bin/python" -m pip check
if "$work/plain/bin/python" -c "import torch" 2>/dev/null; then
  echo "check_install: plain \`pip install lookalike\` installed torch" >&2; exit 1
fi
size_mb=$(du -sm "$work/plain" | cut -f1)
echo "check_install: wheel installed with plain pip into two fresh virtualenvs ([torch], and default: no torch," \
  "${size_mb} MB on disk); pip check clean"
if [ "$size_mb" -gt 1229 ]; then echo "check_install: the default install is ${size_mb} MB, over 1.2 GB" >&2; exit 1; fi

if [ ! -d "$DATA/gallery/lfw10" ]; then
  echo "check_install: SKIPPED the index/query step: $DATA/gallery/lfw10 is absent (set LOOKALIKE_DATA)"
  exit 0
fi
cd "$work"  # not the checkout: the installed package must stand on its own
for kind in venv plain; do
  export LOOKALIKE_WEIGHTS="$work/$kind-weights" LOOKALIKE_STATE="$work/$kind-state"
  export LOOKALIKE_INDEX_HOME="$work/$kind-indexes" HOME="$work/$kind-home"
  mkdir -p "$HOME"  # a new user's empty home: what the run leaves there is checked below
  lk="$work/$kind/bin/lookalike"
  "$lk" index "$DATA/gallery/lfw10" --name lfw10 -q
  "$lk" query "$DATA/gallery/lfw10/Tony_Blair/Tony_Blair_0003.jpg" --index lfw10 -k 3 --json > "answer-$kind.json"
  KIND=$kind "$work/$kind/bin/python" - <<'PY'
import json, os
kind = {"venv": "lookalike[torch]", "plain": "lookalike (no torch)"}[os.environ["KIND"]]
a = json.load(open(f"answer-{os.environ['KIND']}.json"))
top = a["results"][0]
assert top["identity"] == "Tony_Blair" and top["same_person"], a
print(f"check_install: installed {kind} indexed lfw10 and found Tony_Blair first (cosine {top['score']:.4f})")
PY
  left=$(cd "$HOME" && find . -type f ! -path './.cache/matplotlib/*' ! -path './.config/matplotlib/*')
  if [ -n "$left" ]; then echo "check_install: the run left files in HOME (telemetry?): $left" >&2; exit 1; fi
done
echo "check_install: versions (newest the ranges allow): $("$work/plain/bin/python" -m pip freeze 2>/dev/null \
  | grep -i -E '^(numpy|opencv-python-headless|onnxruntime|protobuf|pyarrow|starlette|pillow)==' | tr '\n' ' ')"
echo "check_install: HOME holds no telemetry store or other file after index + query"
