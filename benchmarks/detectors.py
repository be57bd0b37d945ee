"""Benchmark of the registered detectors: LFW View 2 accuracy and indexing speed per detector x head, side by
side in one run on this machine; writes detectors.md and .json.

Each (detector, head) indexes the 7,701 LFW photos View 2 uses into its own fresh index (the same code path as
`lookalike index`), then scores the 6,000 pairs by the main faces' cosine with 10-fold thresholds, as
`lookalike bench lfw` does. Speed is that indexing run's photos/s (read, detect, crop, embed, write); a
detector-only row times `detect` alone on 400 LFW photos.

Usage: python benchmarks/detectors.py [--heads sface facenet-casia] [--detectors mtcnn yunet] [--work DIR]
Needs the shared data folder ($LOOKALIKE_DATA, default ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from lookalike import config
from lookalike.eval.lfw import evaluate_lfw
from lookalike.eval.report import machine, machine_line, write_report
from lookalike.faces.detect import DETECTORS, create_detector
from lookalike.faces.photos import Photo, load_photo

HERE = Path(__file__).resolve().parent


def detect_only(name: str, n: int = 400) -> dict:
    paths = sorted((config.data_dir() / "lfw" / "images").glob("*/*.jpg"))
    random.Random(0).shuffle(paths)
    images = [p.rgb for p in (load_photo(x) for x in paths[:n]) if isinstance(p, Photo)]
    det = create_detector(name)
    det.detect(images[:8])  # warm up
    t = time.perf_counter()
    found = det.detect(images)
    secs = time.perf_counter() - t
    return {"images": len(images), "images_s": round(len(images) / secs, 1), "with_face": sum(map(bool, found))}


def paired_tests(correct: dict, detectors: list[str], heads: list[str]) -> list[dict]:
    """McNemar's exact test between each two detectors per head, on the pairs one judges right and one wrong."""
    from scipy.stats import binomtest

    out = []
    for head in heads:
        for i, a in enumerate(detectors):
            for b in detectors[i + 1 :]:
                if (a, head) not in correct or (b, head) not in correct:
                    continue
                ca, cb = correct[(a, head)], correct[(b, head)]
                only_a, only_b = int((ca & ~cb).sum()), int((~ca & cb).sum())
                p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
                out.append({"head": head, "a": a, "b": b, "only_a": only_a, "only_b": only_b, "pairs": len(ca),
                            "p_value": round(float(p), 4)})  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", nargs="+", default=["sface", "facenet-casia"])
    ap.add_argument("--detectors", nargs="+", default=list(DETECTORS))
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument(
        "--keep-other-heads",
        action="store_true",
        help="carry over detectors.json's rows of heads not in --heads (still valid when only one head changed)",
    )
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="lookalike-detectors-"))
    data = config.data_dir() / "lfw"
    rows, speed = [], {}
    correct: dict[tuple[str, str], object] = {}
    for det in args.detectors:
        speed[det] = detect_only(det)
        print(det, speed[det], file=sys.stderr)
        for head in args.heads:
            res = evaluate_lfw(data, head, work / f"{det}-{head}", detector=det)[0]
            correct[(det, head)] = res.pop("correct")
            rows.append({"detector": det, **res, "photos_s": round(res["photos"] / res["seconds"], 1)})
            print(json.dumps({k: rows[-1][k] for k in ("detector", "head", "accuracy", "photos_s")}), file=sys.stderr)
    if args.keep_other_heads and (HERE / "detectors.json").exists():
        old = json.loads((HERE / "detectors.json").read_text())
        kept = [
            {**r, "measured": r.get("measured", old["date"])} for r in old["results"] if r["head"] not in args.heads
        ]
        rows = sorted(rows + kept, key=lambda r: (args.detectors.index(r["detector"]), r["head"] != "sface"))
    paired = paired_tests(correct, args.detectors, args.heads)
    out = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "detect_only": speed, "results": rows,
           "paired": paired}  # fmt: skip
    lines = [
        "# Detectors",
        "",
        f"Machine: {machine_line(out['machine'])}. Date: {out['date']}. Made by `benchmarks/detectors.py`.",
        "",
        "Detection alone (400 LFW photos, 150x150, one `detect` call, after a warm-up):",
        "",
        "| detector | images/s | with a face |",
        "| --- | ---: | ---: |",
    ]
    for det, s in speed.items():
        lines.append(f"| `{det}` | {s['images_s']} | {s['with_face']} of {s['images']} |")
    lines += [
        "",
        "LFW View 2 through the engine (7,701 photos indexed from scratch per row; 6,000 pairs, 10 folds; main face; "
        "a photo without a face scores its pairs -1):",
        "",
        "| detector | head | accuracy | std | AUC | photos without a face | index photos/s | measured |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| `{r['detector']}` | `{r['head']}` | {100 * r['accuracy']:.2f}% | {100 * r['std']:.2f} | {r['auc']:.4f} "
            f"| {r['photos_without_face']} | {r['photos_s']} | {r.get('measured', out['date'])} |"
        )
    if paired:
        lines += [
            "",
            "Paired comparison on the same 6,000 pairs (each pair judged at its fold's threshold; McNemar's exact "
            "test on the pairs the two detectors judge differently; p >= 0.05: no measurable difference):",
            "",
            "| head | detectors | only the first right | only the second right | difference | p |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for p in paired:
            lines.append(
                f"| `{p['head']}` | `{p['a']}` vs `{p['b']}` | {p['only_a']} | {p['only_b']} | "
                f"{100 * (p['only_a'] - p['only_b']) / p['pairs']:+.2f} pt | {p['p_value']:.3f} |"
            )
    lines += [
        "",
        "Both detectors give the same five landmarks in the same order, so every head's crop works with either; an "
        "index records its detector and a query detects with the same one.",
        "",
    ]
    _, md = write_report(HERE, "detectors", out, "\n".join(lines))
    print(md.read_text())


if __name__ == "__main__":
    main()
