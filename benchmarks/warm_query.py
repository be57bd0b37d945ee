"""Cold against warm `lookalike query`: a fresh process that loads the head, detector and index itself, against a
fresh process that sends the question to a running `lookalike serve`; writes warm_query.md and .json.

The index: the lfw10 gallery (../shared/data/gallery/lfw10, 100 photos of 10 people) with the default head,
built in a temporary folder. Runs alternate (cold, warm, cold, ...) so the machine's noise falls on both alike;
each is one whole `lookalike query PHOTO --index IX --json -k 10` process: wall seconds and its peak RSS. The
answers of the two are compared too.

Usage: python benchmarks/warm_query.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike import config
from lookalike.eval.report import machine, machine_line, today, write_report
from lookalike.eval.server import start_server

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    """Wall seconds and stdout of one process (a one-line error when it fails)."""
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}")
    return wall, r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    gallery = config.data_dir() / "gallery" / "lfw10"
    photo = gallery / "Tony_Blair" / "Tony_Blair_0003.jpg"
    work = Path(tempfile.mkdtemp(prefix="lookalike-warm-"))
    env = {**os.environ, "LOOKALIKE_STATE": str(work / "state")}
    ix = work / "lfw10"
    lk = [sys.executable, "-m", "lookalike"]
    subprocess.run([*lk, "index", str(gallery), "--out", str(ix), "-q"], env=env, check=True)
    t0 = time.perf_counter()
    server, _ = start_server(ix, work / "state")
    server_start = time.perf_counter() - t0
    ask = [*lk, "query", str(photo), "--index", str(ix), "--json", "-k", "10"]
    try:
        cold, warm, cold_rss, warm_rss = [], [], [], []
        answers = {}
        for _ in range(args.runs):
            for name, cmd, out, rss in (("cold", [*ask, "--no-server"], cold, cold_rss), ("warm", ask, warm, warm_rss)):
                # a wrapper process reports the query process's own peak RSS (RUSAGE_CHILDREN of a fresh parent)
                wall, stdout = timed([sys.executable, "-c", _WRAP, *cmd], env)
                peak_mb, text = stdout.split("\n", 1)
                out.append(wall)
                rss.append(int(peak_mb))
                answers[name] = json.loads(text)
        server_rss = _rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    same = answers["cold"] == answers["warm"]
    res = {
        "machine": machine(), "date": today(), "runs": args.runs, "same_answers": same,
        "server_start_s": round(server_start, 2), "server_rss_mb": server_rss,
        "cold": _stats(cold, cold_rss), "warm": _stats(warm, warm_rss),
    }  # fmt: skip
    write_report(HERE, "warm_query", res, render(res))
    print(json.dumps({k: res[k] for k in ("cold", "warm", "same_answers")}))


#: Runs a command as a child and prints its peak RSS (MB) on the first line, then its stdout.
_WRAP = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(r.stderr)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
    "sys.stdout.write(r.stdout)\n"
    "sys.exit(r.returncode)\n"
)


def _rss_mb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) // 1024 for line in fh if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def _stats(walls: list[float], rss: list[int]) -> dict:
    a = np.array(walls)
    return {"median_s": round(float(np.median(a)), 3), "p95_s": round(float(np.percentile(a, 95)), 3),
            "min_s": round(float(a.min()), 3), "peak_rss_mb": int(np.median(rss))}  # fmt: skip


def render(r: dict) -> str:
    c, w = r["cold"], r["warm"]
    return "\n".join([
        "# Cold and warm `lookalike query`",
        "",
        f"{machine_line(r['machine'])}. Date: {r['date']}. Made by `benchmarks/warm_query.py`.",
        "",
        f"One whole `lookalike query PHOTO --index lfw10 --json -k 10` process per run, {r['runs']} runs each, "
        "alternating: cold answers in its own process (imports, head, detector, index loaded, then the answer; "
        "`--no-server`), warm sends the question to a running `lookalike serve` holding the index. Peak RSS is "
        "the query process's own (median over runs).",
        "",
        "| | median | p95 | fastest | peak RSS of the query process |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| cold (`--no-server`) | {c['median_s']} s | {c['p95_s']} s | {c['min_s']} s | {c['peak_rss_mb']:,} MB |",
        f"| warm (through `lookalike serve`) | {w['median_s']} s | {w['p95_s']} s | {w['min_s']} s "
        f"| {w['peak_rss_mb']:,} MB |",
        "",
        f"Warm is {c['median_s'] / w['median_s']:.1f}x faster by the median. The server took "
        f"{r['server_start_s']} s to start (the cost a cold query pays every time) and held {r['server_rss_mb']:,} MB "
        f"after the runs. Same answers both ways: {'yes' if r['same_answers'] else 'NO'}.",
        "",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
