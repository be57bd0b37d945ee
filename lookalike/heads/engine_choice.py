"""Which engine runs FaceNet on this CPU, chosen by measuring both once rather than by a rule.

`measure` times the network in onnxruntime and in torch (fp32, and bf16 where the CPU computes it natively) on one
batch of crops when the weights are made (`lookalike weights import facenet-casia`, or its first use), and keeps the
times beside the weights in `facenet-engines.json`, keyed by the machine (CPU model, its vector flags, the threads a
process gets). `chosen` reads it back for `LOOKALIKE_FACENET_ENGINE=auto`; another machine sharing the weights
folder, or a record that cannot be read, falls back to the rule in `facenet.choose_engine`.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

RECORD = "facenet-engines.json"
#: Crops per timed batch and timed runs per engine (after one warm-up run, interleaved): about 6 s on 2 cores.
BATCH, RUNS = 16, 5
#: How much faster the other engine must be to replace the rule's (`facenet.choose_engine`).
MARGIN = 1.1
_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "neon", "asimd")


def machine_key(threads: int) -> str:
    """The CPU model, its vector flags that decide the engines' speed, and the threads: what a measurement holds for."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith(("flags", "Features")) and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        import platform

        model = platform.processor() or platform.machine()
    return f"{model} | {' '.join(f for f in _FLAGS if f in flags)} | {threads} threads"


def chosen(weights_dir: Path, threads: int) -> str | None:
    """The engine measured fastest on this machine, or None when it was not measured here."""
    try:
        rec = json.loads((Path(weights_dir) / RECORD).read_text())
        entry = rec["machines"][machine_key(threads)]
        return entry["chosen"] if entry["chosen"] in ("torch", "onnxruntime") else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _median_seconds(runners: dict, x) -> dict[str, float]:
    """Each runner's median time on `x`, the runs interleaved (A B A B ...) so that a burst of load elsewhere on the
    machine slows every engine alike instead of the one measured at that moment."""
    for run in runners.values():
        run(x)  # warm-up: first-run allocations and kernel choices
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(RUNS):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(x)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def measure(record_dir: Path, sha: str, threads: int, runners: dict, bf16_native: bool) -> dict:
    """Time each engine's `runners[name](x)` on one batch of crops on this CPU, record it in `record_dir` (beside the
    weights, sha256 `sha`) and return this machine's entry:
    `{"seconds": {engine: s per batch}, "faces_per_s": {...}, "chosen": "torch" or "onnxruntime"}`.

    runners: "onnxruntime" and "torch fp32" (and "torch bf16" where `bf16_native`), each taking the `(N, 3, 160, 160)
    float32` batch the network reads (`facenet.measure_engines` builds them)."""
    from lookalike.atomic import atomic_write_text

    crops = np.random.default_rng(0).integers(0, 256, size=(BATCH, 160, 160, 3), dtype=np.uint8)
    x = (crops.transpose(0, 3, 1, 2).astype(np.float32) - 127.5) / 128.0
    seconds = _median_seconds(runners, x)
    torch_best = min(v for k, v in seconds.items() if k.startswith("torch"))
    # the rule's engine unless the other is clearly faster: one noisy batch on a busy machine does not flip it
    if not bf16_native:
        pick = "torch" if torch_best * MARGIN < seconds["onnxruntime"] else "onnxruntime"
    else:
        pick = "onnxruntime" if seconds["onnxruntime"] * MARGIN < torch_best else "torch"
    entry = {
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "faces_per_s": {k: round(BATCH / v, 1) for k, v in seconds.items()},
        "chosen": pick,
        "weights_sha256": sha,
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    record = Path(record_dir) / RECORD
    try:
        rec = json.loads(record.read_text())
        if not isinstance(rec.get("machines"), dict):
            raise ValueError
    except (OSError, ValueError, AttributeError):
        rec = {"machines": {}}
    rec["machines"][machine_key(threads)] = entry
    try:
        atomic_write_text(record, json.dumps(rec, indent=2))
    except OSError:
        pass  # a read-only weights folder: the rule decides
    return entry
