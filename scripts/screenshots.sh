#!/usr/bin/env bash
# Remake docs/img/*.png from the package-shipped sample photos with headless Chromium (no LFW or other faces).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
exec .venv/bin/python scripts/screenshots.py "$@"
