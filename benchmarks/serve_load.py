"""`lookalike serve` under load: rounds of 50 concurrent queries; errors, latency and the server's memory after each
round (does it stay flat?); writes serve_load.md and .json.

The index: the lfw10 gallery (100 photos of 10 people) with the default head, built in a temporary folder. Each
round sends 50 queries at once from 50 threads, half by path (JSON) and half as uploads (multipart), over 10
different LFW photos; the server answers them one model call at a time per index, so latency grows with the queue
while memory should not.

Usage: python benchmarks/serve_load.py [--rounds 6] [--concurrent 50]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from lookalike import config
from lookalike.eval.report import machine, machine_line, today, write_report
from lookalike.eval.server import start_server

HERE = Path(__file__).resolve().parent


def rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) // 1024 for line in fh if line.startswith("VmRSS:"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--concurrent", type=int, default=50)
    args = ap.parse_args()
    data = config.data_dir()
    gallery = data / "gallery" / "lfw10"
    photos = sorted(p for p in (data / "lfw" / "images").glob("*/*.jpg") if p.parent.name in
                    {d.name for d in gallery.iterdir()})[:: 7][:10]  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="lookalike-load-"))
    env = {**os.environ, "LOOKALIKE_STATE": str(work / "state")}
    ix = work / "lfw10"
    lk = [sys.executable, "-m", "lookalike"]
    subprocess.run([*lk, "index", str(gallery), "--out", str(ix), "-q"], env=env, check=True)
    server, url = start_server(ix, work / "state")
    uploads = {p: p.read_bytes() for p in photos}

    def ask(i: int) -> tuple[float, int, bool]:
        p = photos[i % len(photos)]
        t = time.perf_counter()
        if i % 2:
            r = requests.post(f"{url}/query", files={"photo": (p.name, uploads[p], "image/jpeg")}, data={"k": "5"},
                              timeout=600)  # fmt: skip
        else:
            r = requests.post(f"{url}/query", json={"paths": [str(p)], "k": 5}, timeout=600)
        right = r.status_code == 200 and r.json()[0]["results"][0]["identity"] == p.parent.name
        return time.perf_counter() - t, r.status_code, right

    rounds = []
    try:
        start_rss = rss_mb(server.pid)
        with ThreadPoolExecutor(args.concurrent) as pool:
            for k in range(args.rounds):
                t = time.perf_counter()
                res = list(pool.map(ask, range(args.concurrent)))
                wall = time.perf_counter() - t
                lat = np.array([r[0] for r in res])
                rounds.append({"round": k + 1, "errors": sum(r[1] != 200 for r in res),
                               "right_person_first": sum(r[2] for r in res), "wall_s": round(wall, 2),
                               "p50_s": round(float(np.median(lat)), 2), "p95_s": round(float(np.percentile(lat, 95)), 2),
                               "server_rss_mb": rss_mb(server.pid)})  # fmt: skip
                print(rounds[-1], flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    res = {"machine": machine(), "date": today(), "concurrent": args.concurrent, "start_rss_mb": start_rss,
           "rounds": rounds}  # fmt: skip
    write_report(HERE, "serve_load", res, render(res))


def render(r: dict) -> str:
    md = [
        "# `lookalike serve` under load",
        "",
        f"{machine_line(r['machine'])}. Date: {r['date']}. Made by `benchmarks/serve_load.py`.",
        "",
        f"Rounds of {r['concurrent']} queries sent at once (half by path, half as uploads; 10 LFW photos of the lfw10 "
        "gallery's people, k 5) to one server holding the lfw10 index with the default head. The server answers "
        "one model call at a time per index, so a round's latency is its queue; what must not grow is memory. "
        f"Server RSS after start: {r['start_rss_mb']:,} MB.",
        "",
        "| round | errors | right person first | round wall (s) | latency p50 / p95 (s) | server RSS after |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in r["rounds"]:
        md.append(f"| {x['round']} | {x['errors']} | {x['right_person_first']} / {r['concurrent']} | {x['wall_s']} "
                  f"| {x['p50_s']} / {x['p95_s']} | {x['server_rss_mb']:,} MB |")  # fmt: skip
    rss = [x["server_rss_mb"] for x in r["rounds"]]
    if rss:
        md += ["", f"Server memory from the first round to the last: {rss[0]:,} -> {rss[-1]:,} MB "
               f"({rss[-1] - rss[0]:+,} MB over {len(rss) - 1} more rounds)."]  # fmt: skip
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
