#!/usr/bin/env bash
# Set up if needed, then run the test suite (real models, real photos from ../shared/data when present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check .
exec .venv/bin/python -m pytest -q -ra "$@"
