"""Start `lookalike serve` in a process of its own, for benchmarks and tests: returns once it has recorded its
address (it has loaded its indexes and listens)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lookalike.errors import LookalikeError


def start_server(index: Path, state: Path, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """`lookalike serve --index INDEX --port 0` with `state` as its state folder: `(process, url)`.

    Raises LookalikeError with the server's last line when it exits before listening or takes over `timeout`.
    """
    env = {**os.environ, "LOOKALIKE_STATE": str(state)}
    proc = subprocess.Popen([sys.executable, "-m", "lookalike", "serve", "--index", str(index), "--port", "0"],
                            env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
    record = Path(state) / "server.json"
    deadline = time.monotonic() + timeout
    while not record.exists():
        if proc.poll() is not None:
            raise LookalikeError(f"the server stopped: {(proc.stderr.read().strip().splitlines() or ['?'])[-1]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise LookalikeError(f"the server did not start in {timeout:.0f} s")
        time.sleep(0.1)
    return proc, str(json.loads(record.read_text())["url"])
