#!/usr/bin/env bash
# Set up if needed, then run the test suite (real models, real photos from ../shared/data when present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check .
.venv/bin/python -m pytest -q -ra "$@"
# the wheel, installed with plain pip into a fresh virtualenv, indexes and queries real photos
if [ "$#" -eq 0 ]; then bash scripts/check_install.sh 2>&1 | grep -v "^WARNING: Location"; fi
