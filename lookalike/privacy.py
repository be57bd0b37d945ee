"""Nothing leaves the machine: the switches that keep the dependencies' telemetry off, set before they load.

`lookalike/__init__.py` applies them on import, so every verb, worker process and Ray actor (which inherit the
environment) has them before onnxruntime, Ray or a hub client starts. What each turns off, as found:

- onnxruntime's Linux wheels build in Microsoft's 1DS telemetry from 1.29 on (tried 2026-12-03 on Linux x86_64,
  one session each: 1.22.1, 1.24.4 and 1.28.0 write nothing; 1.29.0, 1.30.0, 1.31.1 and 1.32.0 write a device id
  and an SQLite event queue, `~/.cache/Microsoft/DeveloperTools/.onnxruntime/deviceid` and `onnxruntime.db`,
  whose events hold the OS, the interpreter's path and that id, for an HTTPS uploader, when the first session of
  a process is created). `ORT_DISABLE_TELEMETRY=1`, read when onnxruntime is imported, prevents the uploader, the
  events and the id in all four (its Privacy.md); set after the import it does not, and
  `onnxruntime.disable_telemetry_events()` still leaves one queued event.
- Ray reports usage statistics to its maker when a local cluster starts unless `RAY_USAGE_STATS_ENABLED=0`.
- huggingface_hub (under open_clip and timm): no hub calls and no telemetry.
- fastdup, should a user install it: `FASTDUP_PRODUCTION` and `SENTRY_OPT_OUT` stop its reports.
- `DO_NOT_TRACK=1`, the console convention other tools honour.

A value the user set already is left as it is (an explicit opt-in stays theirs). tests/foundation/test_offline.py holds
these with a HOME in a temporary folder and with strace over a whole index + query + serve run.
"""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "ORT_DISABLE_TELEMETRY": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "FASTDUP_PRODUCTION": "1",
    "SENTRY_OPT_OUT": "1",
    "DO_NOT_TRACK": "1",
}


def apply() -> None:
    """Set each switch of `OFFLINE_ENV` the user has not set."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
