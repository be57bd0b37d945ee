"""Same-person thresholds for `lookalike verify` and `query`'s mark; writes lookalike/heads/calibration.json and
benchmarks/verify.md.

For each head x detector: LFW View 2's 7,701 photos indexed (cache indexes named <detector>-<head> in --work,
as benchmarks/detectors.py fills them, or fresh ones), each photo's main face. The thresholds are set on every
pair of those photos (about 29.6 million different-person pairs, so a false match rate of 1e-4 rests on ~3,000
of them; View 2's own 3,000 different pairs could not set it): at each FMR the lowest cosine that at most that
share of different-person pairs reach, with the share of same-person pairs that do (TMR).

Then `verify`'s accuracy on View 2's 6,000 pairs at the FMR 1e-3 threshold, two ways: with the threshold above
(set on all the photos, these pairs' among them) and cross-validated (set on the photos of nine folds, applied
to the tenth: the folds share no person).

Usage: python benchmarks/verify.py [--heads sface facenet-casia] [--detectors yunet mtcnn] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from lookalike import config
from lookalike.eval.calibrate import FMRS, cross_validated_verify, operating_points
from lookalike.eval.embed import embed_photos, pair_scores
from lookalike.eval.lfw import lfw_subset
from lookalike.eval.report import machine, machine_line, today, write_report
from lookalike.heads.calibration import CALIBRATION_FILE, DEFAULT_FMR, fmr_key

HERE = Path(__file__).resolve().parent


def photo_folds(proto) -> dict[str, int]:
    """The fold of each View 2 photo (the fold of its pairs; LFW's folds share no person)."""
    out: dict[str, int] = {}
    for a, b, k in zip(proto.a, proto.b, proto.split, strict=True):
        for p in (a, b):
            out.setdefault(os.path.abspath(p), int(k))
    return out


def measure(head: str, det: str, proto, labels: dict[str, str], work: Path) -> dict:
    pv = embed_photos(proto.a + proto.b, head, work / f"{det}-{head}", labels=labels, detector=det)
    folds_of = photo_folds(proto)
    keep = np.array([bool(f) for f in pv.found])
    vectors = pv.vectors[keep]
    paths = [p for p, k in zip(pv.paths, keep, strict=True) if k]
    identities = np.array([labels[p] for p in paths])
    folds = np.array([folds_of[p] for p in paths])
    points = operating_points(vectors, identities, FMRS)
    scores, missing = pair_scores(pv, proto.a, proto.b)
    same = proto.same.astype(bool)
    at = points[DEFAULT_FMR]["threshold"]
    in_sample = float(np.mean((scores >= at) == same))
    cv = cross_validated_verify(vectors, identities, folds, scores, same, proto.split, DEFAULT_FMR)
    return {"head": head, "detector": det, "photos": len(paths), "no_face": int((~keep).sum()),
            "points": {fmr_key(f): v for f, v in points.items()}, "verify_accuracy_in_sample": in_sample,
            "view2_fmr_in_sample": float(np.mean(scores[~same] >= at)),
            "view2_tmr_in_sample": float(np.mean(scores[same] >= at)),
            "cross_validated": cv, "missing_pairs": int(missing.sum())}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", nargs="+", default=["sface", "facenet-casia"])
    ap.add_argument("--detectors", nargs="+", default=["yunet", "mtcnn"])
    ap.add_argument("--work", type=Path, help="folder of cache indexes named <detector>-<head>")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="lookalike-verify-"))
    proto = lfw_subset(config.data_dir() / "lfw")
    labels = {os.path.abspath(p): Path(p).parent.name for p in proto.a + proto.b}
    rows = []
    for det in args.detectors:
        for head in args.heads:
            rows.append(measure(head, det, proto, labels, work))
            r = rows[-1]
            print(head, det, {k: round(v["threshold"], 4) for k, v in r["points"].items()},
                  round(r["cross_validated"]["accuracy_mean"], 4), flush=True)  # fmt: skip
    when = today()
    source = f"every pair of LFW View 2's photos ({rows[0]['photos']:,} main faces), measured {when}"
    points = {
        f"{r['head']}|{r['detector']}": {
            k: {
                "threshold": math.ceil(v["threshold"] * 1e6) / 1e6,  # rounded up: lets no more strangers through
                "fmr": round(v["fmr"], 7),
                "tmr": round(v["tmr"], 6),
            }
            for k, v in r["points"].items()
        }
        for r in rows
    }
    CALIBRATION_FILE.write_text(
        json.dumps({"source": source, "default_fmr": fmr_key(DEFAULT_FMR), "points": points}, indent=2) + "\n"
    )
    write_report(HERE, "verify", {"machine": machine(), "date": when, "rows": rows}, render(rows, when))


def render(rows: list[dict], when: str) -> str:
    r0 = rows[0]
    pts = r0["points"][fmr_key(FMRS[0])]
    md = [
        "# Same-person thresholds and `lookalike verify`",
        "",
        f"{machine_line(machine())}. Date: {when}. Made by `benchmarks/verify.py`; the thresholds go to "
        "`lookalike/heads/calibration.json`, where `lookalike verify` and `lookalike query` read them.",
        "",
        f"Set on every pair of LFW View 2's photos: {pts['different_pairs']:,} different-person and "
        f"{pts['same_pairs']:,} same-person pairs of main faces (head x detector rows differ slightly where a "
        "detector found no face). At each false match rate (FMR) the threshold is the lowest cosine that at most "
        "that share of different-person pairs reach; the true match rate (TMR) is the share of same-person pairs "
        "that reach it. These are news photos of mostly adult public figures: take the rates as measured there, "
        "not as a guarantee on family photos, children or other cameras.",
        "",
        "## Thresholds",
        "",
        "| head | detector | FMR 1e-2: threshold / TMR | FMR 1e-3: threshold / TMR | FMR 1e-4: threshold / TMR |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        cells = [f"{r['points'][fmr_key(f)]['threshold']:.4f} / {100 * r['points'][fmr_key(f)]['tmr']:.2f}%"
                 for f in FMRS]  # fmt: skip
        md.append(f"| `{r['head']}` | `{r['detector']}` | " + " | ".join(cells) + " |")
    md += [
        "",
        "## `verify` on View 2's 6,000 pairs, at the FMR 1e-3 threshold",
        "",
        "In-sample: the threshold above (set on all the photos, these pairs' among them). Cross-validated: for each "
        "of the 10 folds, the threshold set the same way on the other nine folds' photos (no person in common), "
        "applied to the fold's 600 pairs; FMR and TMR are those of the held-out decisions. Accuracy here is at a "
        "strict operating point; `lookalike bench lfw` reports the best-accuracy threshold per fold instead.",
        "",
        "| head | detector | accuracy in-sample | FMR / TMR in-sample | accuracy cross-validated (mean ± sd) "
        "| held-out FMR / TMR | pairs without a face |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        cv = r["cross_validated"]
        md.append(
            f"| `{r['head']}` | `{r['detector']}` | {100 * r['verify_accuracy_in_sample']:.2f}% "
            f"| {r['view2_fmr_in_sample']:.4f} / {r['view2_tmr_in_sample']:.4f} "
            f"| {100 * cv['accuracy_mean']:.2f} ± {100 * cv['accuracy_std']:.2f}% "
            f"| {cv['fmr_held_out']:.4f} / {cv['tmr_held_out']:.4f} | {r['missing_pairs']} |"
        )
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
