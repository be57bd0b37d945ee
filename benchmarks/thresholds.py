"""The "same person" thresholds that `lookalike query` marks matches with; writes lookalike/heads/calibration.json
and benchmarks/thresholds.md.

For each head x detector: LFW View 2's 7,701 photos indexed (the same cache indexes `lookalike bench lfw` and
benchmarks/detectors.py fill, or fresh ones), the 6,000 pairs scored by the main faces' cosine, and the lowest
threshold at which at most FMR of the 3,000 different-person pairs score at or above it. With 3,000 different
pairs an FMR of 1e-3 is decided by the 3 or 4 most similar strangers: a coarse point, said in the table.

Usage: python benchmarks/thresholds.py [--heads sface facenet-casia] [--detectors yunet mtcnn] [--fmr 0.001]
       [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path

from lookalike import config
from lookalike.bench.embed import embed_photos, pair_scores
from lookalike.bench.lfw import lfw_subset
from lookalike.bench.report import machine, machine_line, today, write_report
from lookalike.eval.metrics import kfold_accuracy, threshold_at_fmr
from lookalike.heads.calibration import CALIBRATION_FILE

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", nargs="+", default=["sface", "facenet-casia"])
    ap.add_argument("--detectors", nargs="+", default=["yunet", "mtcnn"])
    ap.add_argument("--fmr", type=float, default=0.001)
    ap.add_argument("--work", type=Path, help="folder of cache indexes named <detector>-<head>")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="lookalike-thresholds-"))
    data = config.data_dir() / "lfw"
    proto = lfw_subset(data)
    labels = {os.path.abspath(p): Path(p).parent.name for p in proto.a + proto.b}
    source = f"LFW View 2 (6,000 pairs, 3,000 different-person), FMR <= {args.fmr:g}, measured {today()}"
    points, rows = {}, []
    for det in args.detectors:
        for head in args.heads:
            pv = embed_photos(proto.a + proto.b, head, work / f"{det}-{head}", labels=labels, detector=det)
            scores, missing = pair_scores(pv, proto.a, proto.b)
            same = proto.same.astype(bool)
            op = threshold_at_fmr(scores, same, args.fmr)
            acc = kfold_accuracy(scores, same, proto.split)
            # rounded up, so the stored threshold lets no more strangers through than the measured one
            points[f"{head}|{det}"] = {"threshold": math.ceil(op["threshold"] * 1e6) / 1e6,
                                       "fmr": round(op["fmr"], 6), "tmr": round(op["tmr"], 6)}  # fmt: skip
            rows.append({"head": head, "detector": det, **op, "kfold_thresholds": acc["thresholds"],
                         "missing_pairs": int(missing.sum())})  # fmt: skip
            print(head, det, op)
    CALIBRATION_FILE.write_text(json.dumps({"source": source, "points": points}, indent=2) + "\n")
    md = [
        "# Same-person thresholds",
        "",
        f"{machine_line(machine())} Made by `benchmarks/thresholds.py`; the thresholds go to "
        "`lookalike/heads/calibration.json`, where `lookalike query` reads them.",
        "",
        f'{source}. A match whose cosine is at or above the threshold is marked "likely the same person"; the '
        "false match rate is the share of different-person pairs that reach it, the true match rate the share of "
        "same-person pairs. With 3,000 different-person pairs the FMR moves in steps of 1/3,000, so the threshold "
        "is set by the few most similar strangers of LFW: take it as an operating point on news photos of mostly "
        "adult public figures, not a guarantee on other photos.",
        "",
        "| head | detector | threshold | FMR | TMR | LFW accuracy thresholds (10 folds, min-max) |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        ks = r["kfold_thresholds"]
        md.append(
            f"| `{r['head']}` | `{r['detector']}` | {r['threshold']:.4f} | {r['fmr']:.4f} | {r['tmr']:.4f} "
            f"| {min(ks):.3f}-{max(ks):.3f} |"
        )
    write_report(HERE, "thresholds", {"source": source, "rows": rows}, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
