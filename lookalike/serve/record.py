"""Where a running `lookalike serve` can be found: `server.json` in the state folder (address, pid, the indexes it
holds), written when it starts and removed when it stops; a record left by a server that died is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from lookalike.atomic import atomic_write_text
from lookalike.config import state_dir

RECORD = "server.json"


def write_record(url: str, indexes: dict[str, str]) -> Path | None:
    """Record this process as the server at `url` holding `indexes` (name -> absolute folder); None, recording
    nothing, while another live server is recorded (the first keeps its record: a second one stopping would
    otherwise delete it and leave the first unfound)."""
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / RECORD
    try:
        other = int(json.loads(path.read_text()).get("pid", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        other = 0
    if other and other != os.getpid() and _alive(other):
        return None
    atomic_write_text(path, json.dumps({"url": url, "pid": os.getpid(), "indexes": indexes}, indent=2))
    return path


def clear_record() -> None:
    """Remove the record if it is this process's."""
    path = state_dir() / RECORD
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    except OSError:  # pragma: no cover - e.g. Windows without the pid
        return False
    return True


def find_server(index: Path) -> str | None:
    """The address of a running server that holds the index folder `index`, or None."""
    try:
        rec = json.loads((state_dir() / RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or not _alive(int(rec.get("pid", -1))):
        return None
    want = os.path.realpath(index)
    if not any(os.path.realpath(p) == want for p in (rec.get("indexes") or {}).values()):
        return None
    url = str(rec.get("url") or "")
    # only a server on this machine: a query never leaves it
    return url if urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1") else None
