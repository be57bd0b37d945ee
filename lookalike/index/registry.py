"""Named indexes, wherever they were built: `lookalike index --name NAME` run in one folder writes
`./indexes/NAME` there, and `--index NAME` from any other folder still finds it through this small record
(name -> absolute folder) in the user's state folder (`$LOOKALIKE_STATE`, else platformdirs' user data folder).

The record is a JSON file, rewritten atomically under an exclusive lock; an entry whose folder is gone or no
longer holds an index is ignored (and dropped at the next write). A name found in the index home of the
current folder wins over the record, so a project's own `./indexes/NAME` is always the one it means.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from lookalike.atomic import atomic_write_text
from lookalike.locks import file_lock

#: Environment variable naming the folder for the engine's own state (the record of named indexes).
STATE_ENV = "LOOKALIKE_STATE"
RECORD = "indexes.json"


def state_dir() -> Path:
    """$LOOKALIKE_STATE, else the user data folder (`~/.local/share/lookalike` on Linux)."""
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_data_path("lookalike")


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
