#!/usr/bin/env bash
# Install as a user does: build the wheel, install it with plain pip into a fresh virtualenv that has torch and
# nothing else (torch linked from .venv, see scripts/torch_site.py), check `pip check`, then index and query real
# photos from ../shared/data with the installed `lookalike` (an empty weights folder: the first use converts
# FaceNet CASIA, as it would for a new user). Run by scripts/test.sh after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$PWD/.venv/bin/python"
DATA="${LOOKALIKE_DATA:-$PWD/../shared/data}"
work="$(mktemp -d)"
had_build=0; [ -e build ] && had_build=1
trap 'rm -rf "$work"; [ "$had_build" = 1 ] || rm -rf "$OLDPWD_ROOT/build"' EXIT
OLDPWD_ROOT="$PWD"

"$PY" -m pip wheel --no-deps -q -w "$work/dist" .
"$PY" -m venv "$work/venv"
site="$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$PY" scripts/torch_site.py "$work/torch" > "$site/torch-from-setup.pth"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$work"/dist/lookalike-*.whl
"$work/venv/bin/python" -m pip check
echo "check_install: wheel installed with plain pip into a fresh virtualenv; pip check clean"

if [ ! -d "$DATA/gallery/lfw10" ]; then
  echo "check_install: SKIPPED the index/query step: $DATA/gallery/lfw10 is absent (set LOOKALIKE_DATA)"
  exit 0
fi
cd "$work"  # not the checkout: the installed package must stand on its own
export LOOKALIKE_WEIGHTS="$work/weights" LOOKALIKE_STATE="$work/state" LOOKALIKE_INDEX_HOME="$work/indexes"
export HOME="$work/home"; mkdir -p "$HOME"  # a new user's empty home: what the run leaves there is checked below
lk="$work/venv/bin/lookalike"
"$lk" index "$DATA/gallery/lfw10" --name lfw10 -q
"$lk" query "$DATA/gallery/lfw10/Tony_Blair/Tony_Blair_0003.jpg" --index lfw10 -k 3 --json > answer.json
"$work/venv/bin/python" - <<'PY'
import json
a = json.load(open("answer.json"))
top = a["results"][0]
assert top["identity"] == "Tony_Blair" and top["same_person"], a
print(f"check_install: installed lookalike indexed lfw10 and found Tony_Blair first (cosine {top['score']:.3f})")
PY
left=$(cd "$HOME" && find . -type f ! -path './.cache/matplotlib/*' ! -path './.config/matplotlib/*')
if [ -n "$left" ]; then echo "check_install: the run left files in HOME (telemetry?): $left" >&2; exit 1; fi
echo "check_install: versions (newest the ranges allow): $("$work/venv/bin/python" -m pip freeze 2>/dev/null \
  | grep -i -E '^(numpy|opencv-python-headless|onnxruntime|protobuf|pyarrow|starlette|pillow)==' | tr '\n' ' ')"
echo "check_install: HOME holds no telemetry store or other file after index + query"
