"""Running `lookalike index` (or another CLI) in a fresh process and measuring it: wall time, photos/s and faces/s,
and the peak RSS of the process and its children (sampled every 50 ms from /proc); the rows' table."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


#: Runs the CLI of whatever `lookalike` is first on sys.path (this checkout or the baseline's).
RUNNER = (
    "import sys\n"
    "try:\n    from lookalike.cli.app import main\n"
    "except ImportError:\n    from lookalike.cli import main\n"
    "sys.argv = ['lookalike'] + sys.argv[1:]\nmain()\n"
)


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of `pid` and all its descendants, KB (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total


def run_measured(cmd: list[str], env: dict, cwd: Path) -> dict:
    """Run `cmd`; wall seconds and the peak RSS of its process tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_kb(proc.pid))
            stop.wait(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate(timeout=3600)
    seconds = time.perf_counter() - t0
    stop.set()
    t.join()
    return {"exit": proc.returncode, "seconds": round(seconds, 2), "peak_rss_mb": round(peak / 1024), "stdout": out,
            "stderr": err[-2000:]}  # fmt: skip


def index_row(
    label: str, python: str, pythonpath: Path, src: Path, out: Path, extra: list[str], n: int, one: Path
) -> dict:
    """One configuration: a run over `src` and, for its fixed cost, a run over the single photo folder `one`.
    extra: `lookalike index` arguments, and `NAME=value` words for the environment."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")]))}
    env.update(w.split("=", 1) for w in extra if "=" in w and not w.startswith("-"))
    extra = [w for w in extra if not ("=" in w and not w.startswith("-"))]
    shutil.rmtree(out, ignore_errors=True)
    start = run_measured([python, "-c", RUNNER, "index", str(one), "--out", str(out), "-q", *extra], env, HERE)
    shutil.rmtree(out, ignore_errors=True)
    r = run_measured([python, "-c", RUNNER, "index", str(src), "--out", str(out), "-q", "--json", *extra], env, HERE)
    row = {"config": label, "exit": r["exit"], "seconds": r["seconds"], "peak_rss_mb": r["peak_rss_mb"],
           "one_photo_seconds": start["seconds"]}  # fmt: skip
    if r["exit"] != 0:
        row["error"] = (r["stderr"].strip().splitlines() or ["?"])[-1][:200]
        return row
    import json

    report = json.loads(r["stdout"].strip().splitlines()[-1])
    row.update(faces=report["faces_added"], rejects=report["rejects_added"], workers=report.get("workers", 0))
    row["photos_per_s"] = round(n / r["seconds"], 1)
    row["faces_per_s"] = round(report["faces_added"] / r["seconds"], 1)
    return row


def face_recognition_row(script: Path, src: Path, known: Path, n: int, cpus: int, one: Path) -> dict:
    """The face_recognition CLI: detect (HOG) and encode every face of every photo in `src` against one known face."""
    start = run_measured([str(script), "--cpus", str(cpus), str(known), str(one)], dict(os.environ), HERE)
    r = run_measured([str(script), "--cpus", str(cpus), str(known), str(src)], dict(os.environ), HERE)
    row = {"config": f"face_recognition CLI (HOG + dlib ResNet, --cpus {cpus})", "exit": r["exit"],
           "seconds": r["seconds"], "peak_rss_mb": r["peak_rss_mb"], "one_photo_seconds": start["seconds"]}  # fmt: skip
    if r["exit"] != 0:
        row["error"] = (r["stderr"].strip().splitlines() or ["?"])[-1][:200]
        return row
    lines = [ln for ln in r["stdout"].splitlines() if "," in ln]
    row["faces"] = sum(1 for ln in lines if not ln.endswith(",no_persons_found"))
    row["photos_per_s"] = round(n / r["seconds"], 1)
    row["faces_per_s"] = round(row["faces"] / r["seconds"], 1)
    return row


def table(rows: list[dict], base: float | None, fr: float | None) -> list[str]:
    lines = [
        "| configuration | photos/s | faces/s | faces | rejects | workers | peak RSS (tree) | one photo (s) "
        "| vs before | vs face_recognition |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if r.get("exit") != 0:
            lines.append(f"| {r['config']} | failed: {r.get('error', '')} | | | | | | | | |")
            continue
        vs_b = f"{r['photos_per_s'] / base:.2f}x" if base else ""
        vs_f = f"{r['photos_per_s'] / fr:.2f}x" if fr else ""
        lines.append(
            f"| {r['config']} | {r['photos_per_s']} | {r['faces_per_s']} | {r.get('faces', '')} | {r.get('rejects', '')} "
            f"| {r.get('workers', '')} | {r['peak_rss_mb']:,} MB | {r['one_photo_seconds']} | {vs_b} | {vs_f} |"
        )
    return lines


def git_head(checkout: Path) -> str:
    """The short commit a checkout is at (for the report), or "?"."""
    r = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "?"


def random_casia_weights(work: Path) -> Path:
    """A weights folder with seeded random facenet-casia weights (speed does not depend on the values), for a
    machine without the converted file; the report says so."""
    import torch

    from lookalike.heads.facenet import CASIA_FILE, build_backbone

    wdir = work / "random-weights"
    wdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(build_backbone(fold=False).state_dict(), wdir / CASIA_FILE)
    return wdir


def counts_of(results: dict, name: str) -> str:
    return f"{results['counts'].get(name, '?'):,}"


def sync_device(device: str) -> None:
    import torch

    if torch.device(device or "cpu").type == "cuda":
        torch.cuda.synchronize()
