"""The DoppelVer benchmark (seed 003, 7.3.3-7.3.4): View 2 and View 1 per head and protocol, tables, ROC PNGs.

Rows are heads, columns the protocols (doppelganger, ViSE), shaped like the seed's Tables 7.1 (accuracy)
and 7.2 (ROC AUC), beside the seed's reference figures (SFNet-20 trained on VGGFace2, on the DoppelVer
images themselves).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from lookalike.errors import LookalikeError, WeightsMissingError
from lookalike.eval import report
from lookalike.eval.embed import MISSING_RULE, embed_photos, pair_scores
from lookalike.eval.lfw import bench_index_dir
from lookalike.eval.metrics import roc_curve, view1, view2
from lookalike.eval.protocols import PairProtocol, load_protocol
from lookalike.faces.detect import DEFAULT_DETECTOR, detector_spec

#: Seed 003, Tables 7.1 / 7.2: the best SFNet-20 (VGGFace2) on DoppelVer View 2.
REFERENCE = {
    "model": "SFNet-20 trained on VGGFace2 (seed 003, Tables 7.1/7.2; DoppelVer images)",
    "accuracy": {"doppelganger": 0.6257, "vise": 0.5593},
    "auc": {"doppelganger": 0.6705, "vise": 0.5682},
}


def protocol_summary(path: Path) -> dict[str, int]:
    """`{"pairs", "folds", "positives", "identities"}` of a protocol file (+ `.splits` sidecar); no images needed."""
    return load_protocol(Path(path)).summary()


def _view_result(head: str, scores: np.ndarray, proto: PairProtocol, extra: dict) -> dict:
    """View 2 and View 1 of one scoring of a protocol."""
    v2 = view2(scores, proto.same, proto.split)
    v1 = view1(scores, proto.same, proto.split)
    test = proto.split != 0
    fpr, tpr, _ = roc_curve(scores[test], proto.same[test])
    at = scores[test] >= v2["threshold"]  # the View 2 decision (threshold from split 0) on the test splits
    op = (float(np.mean(at[~proto.same[test]])), float(np.mean(at[proto.same[test]])))
    return {
        "head": head,
        "protocol": proto.name,
        "view2": {k: v2[k] for k in ("threshold", "accuracy", "auc", "pairs")},
        "view2_per_split": v2["per_split"],
        "view1": {k: v1[k] for k in ("em_acc", "sem", "sigma", "accuracies", "test_splits")},
        "pairs": len(proto),
        **extra,
        "_roc": (fpr, tpr, op, int((~proto.same[test]).sum())),
    }


def evaluate_protocol(
    proto: PairProtocol,
    head: str,
    index_dir: Path | None = None,
    progress=None,
    rerank: str = "none",
    images_root: Path | None = None,
    progress_for=None,
) -> list[dict]:
    """View 2 (threshold on split 0; ACC, ROC AUC on splits 1-9) and View 1 (EM ACC, SEM) for one head.

    One result per scoring: the head's cosine, then with `rerank="metric"` the `bench.metric_pairs` scorings
    (FaceNet heads), named `"<head> + <variant>"`.
    """
    t0 = time.perf_counter()
    missing_files = sorted({p for p in proto.a + proto.b if not os.path.exists(p)})
    if missing_files:
        raise LookalikeError(
            f"{len(missing_files)} images of protocol {proto.name!r} are missing under the images root, "
            f"e.g. {missing_files[0]}"
        )
    labels = {os.path.abspath(p): i for p, i in zip(proto.a + proto.b, proto.identity_a + proto.identity_b)}
    index_dir = index_dir or bench_index_dir(head)
    pv = embed_photos(proto.a + proto.b, head, index_dir, labels=labels, progress=progress)
    scores, missing = pair_scores(pv, proto.a, proto.b)
    common = {"photos": len(pv.paths), "photos_without_face": int((~pv.found).sum())}
    extra = {**common, "pairs_with_missing_face": int(missing.sum()), "seconds": round(time.perf_counter() - t0, 1)}
    out = [_view_result(head, scores, proto, extra)]
    if rerank == "metric":
        from lookalike.eval.metric_pairs import rerank_results

        root = Path(images_root) if images_root is not None else Path(os.path.commonpath(proto.a + proto.b)).parent
        out += rerank_results(proto, head, index_dir, root, common, _view_result, progress_for)
    return out


#: Legend words for the scorings (the tables keep the equation numbers of seed 000).
_LEGEND_WORDS = {
    "maps plain (eq. 12)": "feature-map distance",
    "global metric (eq. 11)": "feature maps, one learnt weighting",
    "metric (eq. 11)": "feature maps, weighting learnt per person",
}


def _legend(name: str) -> str:
    head, _, variant = name.partition(" + ")
    words = _LEGEND_WORDS.get(variant, variant)
    return f"{head}: {words}" if variant else f"{head}: cosine"


def _plot_rocs(out_dir: Path, protocol: str, curves: list[tuple[str, tuple, float]]) -> Path:
    """ROC curves of one protocol with a log false-positive axis (the low-FPR end is where verification runs),
    each head's View 2 operating point marked, legends in words."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    lowest = 1.0
    for name, (fpr, tpr, op, negatives), auc in curves:
        lowest = min(lowest, 1.0 / max(1, negatives))
        keep = fpr > 0  # log axis: the curve from its first false positive
        (line,) = ax.plot(fpr[keep], tpr[keep], label=f"{_legend(name)} (AUC {100 * auc:.2f}%)")
        ax.plot(*op, marker="o", ms=6, c=line.get_color(), mec="black", mew=0.6)
    ax.set_xscale("log")
    ax.set_xlim(lowest, 1.0)
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="major", lw=0.4, alpha=0.6)
    ax.set(xlabel="false match rate (different-person pairs accepted, log scale)",
           ylabel="true match rate (same-person pairs accepted)",
           title=f"DoppelVer {protocol}: View 2 ROC (test splits 1-9)")  # fmt: skip
    ax.plot([], [], marker="o", ls="", c="grey", mec="black", label="dot: the threshold chosen on split 0")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"doppelver_roc_{protocol}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def run_doppelver(
    protocol_files: list[Path],
    images_root: Path,
    heads: list[str],
    out_dir: Path | None,
    progress_for=None,
    notes: list[str] | None = None,
    rerank: str = "none",
) -> dict:
    """Evaluate every head on every protocol; write `doppelver.md`, `doppelver.json`, ROC PNGs to `out_dir`."""
    protos = [load_protocol(Path(f), images_root) for f in protocol_files]
    names = [p.name for p in protos]
    if len(set(names)) != len(names):
        raise LookalikeError(f"two protocols share the name {names}: name files <protocol>_*.txt")
    results, skipped = [], []
    for head in heads:
        try:
            for proto in protos:
                prog = progress_for(f"{head} {proto.name}") if progress_for else None
                results += evaluate_protocol(
                    proto, head, progress=prog, rerank=rerank, images_root=images_root, progress_for=progress_for
                )
        except WeightsMissingError as e:
            skipped.append({"head": head, "reason": str(e)})
    pngs = []
    if out_dir is not None:
        for proto in protos:
            curves = [(r["head"], r["_roc"], r["view2"]["auc"]) for r in results if r["protocol"] == proto.name]
            if curves:
                pngs.append(str(_plot_rocs(Path(out_dir), proto.name, curves)))
    for r in results:
        r.pop("_roc")
    out = {
        "benchmark": "DoppelVer View 2 (threshold on split 0; ACC and ROC AUC on splits 1-9) and View 1 "
        "(each of splits 1-9 tested with a threshold fitted on the other 9 splits; EM ACC, SEM)",
        "date": report.today(),
        "detector": detector_spec(DEFAULT_DETECTOR).name,
        "machine": report.machine(),
        "images_root": str(images_root),
        "protocols": {p.name: {"file": str(f), **p.summary()} for p, f in zip(protos, protocol_files)},
        "missing_face_rule": MISSING_RULE,
        "reference": REFERENCE,
        "results": results,
        "skipped": skipped,
        "roc_pngs": pngs,
        "notes": notes or [],
    }
    if out_dir is not None:
        report.write_report(Path(out_dir), "doppelver", out, doppelver_markdown(out))
    return out


def _cell(results: list[dict], head: str, proto: str, fn) -> str:
    for r in results:
        if r["head"] == head and r["protocol"] == proto:
            return fn(r)
    return "n/a"


def doppelver_markdown(out: dict) -> str:
    protos = list(out["protocols"])
    heads = list(dict.fromkeys(r["head"] for r in out["results"]))
    ref = out["reference"]
    lines = [
        "# DoppelVer benchmark",
        "",
        f"{out['benchmark']}.",
        "",
        f"- Date: {out['date']}",
        f"- Machine: {report.machine_line(out['machine'])}",
        f"- Images root: `{out['images_root']}`",
        f"- Detector: `{out.get('detector', 'mtcnn')}` (the default), main face",
        f"- Missing faces: {out['missing_face_rule']}.",
    ]
    for name, p in out["protocols"].items():
        lines.append(
            f"- Protocol `{name}`: `{p['file']}`: {p['pairs']} pairs, {p['folds']} splits, "
            f"{p['positives']} positive, {p['identities']} identities"
        )
    lines += [f"- {n}" for n in out.get("notes", [])]
    header = "| model | " + " | ".join(protos) + " |"
    rule = "| --- |" + " --- |" * len(protos)

    def table(title: str, fn, ref_key: str | None) -> list[str]:
        rows = ["", f"## {title}", "", header, rule]
        for h in heads:
            rows.append(f"| {h} | " + " | ".join(_cell(out["results"], h, p, fn) for p in protos) + " |")
        if ref_key:
            rows.append(
                f"| reference: {ref['model']} | " + " | ".join(report.pct(ref[ref_key].get(p)) for p in protos) + " |"
            )
        return rows

    lines += table("Table 7.1 shape: View 2 accuracy (%)", lambda r: report.pct(r["view2"]["accuracy"]), "accuracy")
    lines += table("Table 7.2 shape: View 2 ROC AUC (%)", lambda r: report.pct(r["view2"]["auc"]), "auc")
    lines += table(
        "View 1: EM ACC ± SEM (%)",
        lambda r: f"{report.pct(r['view1']['em_acc'])} ± {report.pct(r['view1']['sem'])}",
        None,
    )
    lines += table(
        "Coverage: photos without a face / photos; pairs touched",
        lambda r: f"{r['photos_without_face']} / {r['photos']}; {r['pairs_with_missing_face']}",
        None,
    )
    if out["roc_pngs"]:
        lines += [
            "",
            "ROC curves (View 2, splits 1-9), written beside this page by the run (figures are not kept in the "
            "repository): " + ", ".join(f"`{Path(p).name}`" for p in out["roc_pngs"]),
        ]
    lines += report.closing_lines(out)
    return "\n".join(lines) + "\n"
