"""FaceNet's engines on this CPU: torch fp32 (and bf16 where the CPU has it natively) against onnxruntime on the
same weights and the same real faces; faces/s (median of repeated batches, both engines in one run), the cosine of
their vectors, and the CPU's flags; writes facenet-engines.md/.json.

Faces: 64 LFW photos (one per person, centre crops resized to 160 px), batch 32 as `lookalike index` embeds.

Usage: python benchmarks/facenet_engines.py [--repeats 7] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from lookalike import config
from lookalike.eval.report import machine, machine_line, today, write_report

HERE = Path(__file__).resolve().parent
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "avx_vnni")


def cpu_flags() -> list[str]:
    try:
        line = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
    except (OSError, StopIteration):
        return []
    have = set(line.split())
    return [f for f in FLAGS if f in have]


def faces(n: int = 64) -> np.ndarray:
    import cv2

    root = config.data_dir() / "lfw" / "images"
    if not root.is_dir():
        sys.exit(f"facenet_engines: {root} is absent (set $LOOKALIKE_DATA)")
    out = []
    for person in sorted(p for p in root.iterdir() if p.is_dir())[::40][:n]:
        bgr = cv2.imread(str(sorted(person.glob("*.jpg"))[0]))
        h, w = bgr.shape[:2]
        side = round(min(h, w) * 2 / 3)
        crop = bgr[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
        out.append(cv2.cvtColor(cv2.resize(crop, (160, 160)), cv2.COLOR_BGR2RGB))
    return np.stack(out)


def table_row(r: dict) -> str:
    return (f"| {r['engine']} | {r['precision']} | {r['faces_s']} | {r['ratio_to_torch_fp32']}x | "
            f"{r['cosine_min_to_torch_fp32']} |")  # fmt: skip


def rate(head, x: np.ndarray, repeats: int, batch: int = 32) -> tuple[float, np.ndarray]:
    vectors = head.embed(x, batch_size=batch)  # warm
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        head.embed(x, batch_size=batch)
        times.append(time.perf_counter() - t)
    return len(x) / statistics.median(times), vectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="Threads for both engines [the CPUs given].")
    args = ap.parse_args()
    from lookalike.heads import create_head
    from lookalike.heads.base import fast_bf16
    from lookalike.heads.facenet import cpu_threads

    threads = args.threads or cpu_threads()
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    x = faces()
    rows = []
    runs = [("torch", "fp32", True), ("torch", "fp32", False)]
    runs += ([("torch", "bf16", True)] if fast_bf16("cpu") else []) + [("onnxruntime", "fp32", True)]
    vecs = {}
    for engine, precision, fold in runs:
        os.environ["LOOKALIKE_FACENET_ENGINE"] = engine
        head = create_head("facenet-casia", device="cpu", precision=precision)
        if not fold:  # the torch path as it was when the ONNX Runtime issue was filed: batch norms not folded
            from lookalike.heads.facenet import build_backbone, load_state_file

            head.net = build_backbone(load_state_file(head._path, head._how), fold=False)
        r, v = rate(head, x, args.repeats)
        vecs[(engine, precision, fold)] = v
        name = engine if fold or engine != "torch" else "torch, batch norms unfolded"
        rows.append({"engine": name, "precision": head.precision, "faces_s": round(r, 1)})
        print(f"{name} {head.precision}: {r:.1f} faces/s", file=sys.stderr)
    base = vecs[("torch", "fp32", True)]
    for row, v in zip(rows, vecs.values(), strict=True):
        row["cosine_min_to_torch_fp32"] = round(float((v * base).sum(axis=1).min()), 7)
        row["ratio_to_torch_fp32"] = round(row["faces_s"] / rows[0]["faces_s"], 2)
    from lookalike.heads.facenet import choose_engine

    os.environ.pop("LOOKALIKE_FACENET_ENGINE", None)
    default = choose_engine("cpu")
    m = machine()
    flags = cpu_flags()
    lines = [
        "# FaceNet's engines on a CPU",
        "",
        f"Measured {today()} on {machine_line(m)}; CPU flags: {', '.join(flags) or 'none of ' + ', '.join(FLAGS)}; "
        f"{threads} threads; {len(x)} real LFW faces in batches of 32, median of {args.repeats} passes, both engines "
        "in one run. `python benchmarks/facenet_engines.py`.",
        "",
        "| engine | precision | faces/s | vs torch fp32 | cosine min to torch fp32 |",
        "| --- | --- | ---: | ---: | ---: |",
        *[table_row(r) for r in rows],
        "",
        f"`LOOKALIKE_FACENET_ENGINE=auto` (the default) picks **{default}** on this CPU: onnxruntime where the CPU has "
        "no native bf16 (no avx512_bf16 or amx_bf16), torch where it has (bf16 autocast) and on CUDA. The graph is "
        "built from the weights without torch (`lookalike/heads/facenet_onnx.py`) and kept beside them. The torch "
        "fp32 row is today's torch path (batch norms folded into the convolutions); the unfolded row is the torch "
        "path as the ONNX Runtime issue measured it (28.4 faces/s then).",
        "",
    ]
    write_report(HERE, "facenet-engines", {"machine": m, "date": today(), "cpu_flags": flags, "threads": threads,
                                           "rows": rows, "default": default}, "\n".join(lines))  # fmt: skip


if __name__ == "__main__":
    main()
