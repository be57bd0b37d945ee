"""Named indexes, wherever they were built: `lookalike index --name NAME` writes the index home's NAME (the
per-user data folder, or $LOOKALIKE_INDEX_HOME, which may be a project's own folder), and `--index NAME` from any
other folder still finds it through this small record (name -> absolute folder) in the user's state folder
(`$LOOKALIKE_STATE`, else platformdirs' user data folder).

The record is a JSON file, rewritten atomically under an exclusive lock; an entry whose folder is gone or no
longer holds an index is ignored (and dropped at the next write). A name found in the current index home wins
over the record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from lookalike.atomic import atomic_write_text
from lookalike.config import state_dir
from lookalike.locks import file_lock

RECORD = "indexes.json"


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def remember(name: str, folder: Path, is_index: Callable[[Path], bool]) -> None:
    """Record that index `name` lives in `folder` (absolute), dropping entries whose folder `is_index` no longer
    accepts; never fails a run (a read-only state folder is skipped)."""
    try:
        d = state_dir()
        d.mkdir(parents=True, exist_ok=True)
        with file_lock(d / (RECORD + ".lock")):
            known = {k: v for k, v in _read(d / RECORD).items() if is_index(Path(v))}
            known[name] = str(Path(folder).resolve())
            atomic_write_text(d / RECORD, json.dumps(known, indent=2, sort_keys=True) + "\n")
    except OSError:
        pass


def lookup(name: str) -> Path | None:
    """The folder recorded for index `name` (the caller checks it still holds one), or None."""
    folder = _read(state_dir() / RECORD).get(name)
    return Path(folder) if folder else None


def recorded() -> dict[str, Path]:
    """Every recorded name and its folder (folders not checked)."""
    return {k: Path(v) for k, v in _read(state_dir() / RECORD).items()}
