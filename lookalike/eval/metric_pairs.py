"""`--rerank metric` on a verification benchmark: score pairs by seed 000's feature-map distances.

A pair benchmark has no candidate list to reorder, so "rerank" here means: score each pair (a, b) by the
same distance `lookalike query --rerank metric` orders candidates by, instead of the embedding cosine, and
run the benchmark's own protocol (threshold, folds) on those scores. Three scorings are reported:

- `maps plain (eq. 12)`: ||f_a - f_b|| on the L2-normalised block8 maps (no learning; what the metric starts from);
- `global metric (eq. 11)`: ||w (.) (f_a - f_b)|| with one weighting learnt across the labelled identities of
  the other splits (`metric.learn_global_metric`);
- `metric (eq. 11)`: what `query --rerank metric` does: the metric of the pair's identities, learnt from their
  photos outside the pair's split (at least 3; P_arb = 100 faces of other identities outside the split), the
  global metric when neither side has one. When both sides have one the two distances are averaged.

Each metric's distance is divided by its own scale (`info["d_ref"]`: the median distance from its identity to
arbitrary faces), so one threshold can serve pairs scored by different metrics. Nothing the pair's split
holds is learnt from: not its photos, and for the global metric not its identities, so the benchmark stays a
test on unseen data (LFW's "unrestricted, labelled outside data" setting: identities of other folds are used).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lookalike.atomic import atomic_write_text
from lookalike.eval.protocols import PairProtocol
from lookalike.heads.base import FEATURE_MAPS
from lookalike.index.layout import MAPS
from lookalike.similarity.metric import Metric, learn_global_metric, learn_metric, plain_distance, prepare

#: The score of a pair touching a photo with no face: below any distance score ("different").
MISSING_SCORE = -1e3
VARIANTS = {
    "plain": "maps plain (eq. 12)",
    "global": "global metric (eq. 11)",
    "metric": "metric (eq. 11)",
}
MIN_IDENTITY_PHOTOS = 3


def _close(progress) -> None:
    if progress is not None and hasattr(progress, "close"):
        progress.close()


class MapCache:
    """Prepared main-face feature maps of photos, kept in `<index>/maps/` so a re-run computes nothing.

    The geometry (box, landmarks) comes from the bench index, where `embed_photos` put every photo first.
    Stored as float16 (a block8 map is 16,128 values: 32 KB per face).
    """

    def __init__(self, head, index_dir: Path) -> None:
        self.head = head
        self.index_dir = Path(index_dir)
        self.file = self.index_dir / MAPS / f"{head.weights_sha256[:16]}-block8.npy"
        self.maps: dict[str, np.ndarray] = {}
        paths_file = self.file.with_suffix(".json")
        if self.file.exists() and paths_file.exists():
            arr = np.load(self.file)
            names = json.loads(paths_file.read_text())
            if len(names) == len(arr):
                self.maps = dict(zip(names, arr, strict=True))
        self.missing: set[str] = set()

    def ensure(self, paths: list[str], progress=None) -> None:
        """Compute the maps of `paths` not cached yet (a photo with no face lands in `missing`)."""
        from lookalike.similarity.facecrops import geometry_from_index, main_face_crops

        todo = [p for p in dict.fromkeys(paths) if p not in self.maps and p not in self.missing]
        if not todo:
            return
        geometry = geometry_from_index(self.index_dir)
        self.missing.update(p for p in todo if p not in geometry)
        todo = [p for p in todo if p in geometry]
        if progress is not None:
            progress.start(len(todo))
        step = 256
        for i in range(0, len(todo), step):
            fc = main_face_crops(todo[i : i + step], crop=self.head.crop, geometry=geometry)
            self.missing.update(fc.missing)
            if len(fc.paths):
                _, m = self.head.embed_with_maps(fc.crops)
                self.maps.update(zip(fc.paths, prepare(m).astype(np.float16), strict=True))
            if progress is not None:
                progress.advance(len(todo[i : i + step]), len(fc.paths))
        _close(progress)
        self.save()

    def save(self) -> None:
        names = list(self.maps)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_name(self.file.name + ".tmp.npy")
        np.save(tmp, np.stack([self.maps[n] for n in names]) if names else np.zeros((0,), np.float16))
        os.replace(tmp, self.file)
        atomic_write_text(self.file.with_suffix(".json"), json.dumps(names))

    def get(self, paths: list[str]) -> np.ndarray:
        return np.stack([self.maps[p] for p in paths]).astype(np.float32)


def identity_photos(proto: PairProtocol, gallery: dict[str, list[str]] | None) -> dict[str, list[str]]:
    """Every photo of each identity of the protocol: those it names, plus `gallery[identity]` when given."""
    out: dict[str, list[str]] = {}
    for p, i in zip(proto.a + proto.b, proto.identity_a + proto.identity_b, strict=True):
        out.setdefault(i, []).append(os.path.abspath(p))
    for i in out:
        out[i] = sorted(set(out[i]) | {os.path.abspath(p) for p in (gallery or {}).get(i, [])})
    return out


def split_sets(proto: PairProtocol) -> dict[int, tuple[set[str], set[str]]]:
    """Per split: (its photos, its identities): what a metric used on that split must not learn from."""
    out: dict[int, tuple[set[str], set[str]]] = {}
    for s in np.unique(proto.split):
        m = np.nonzero(proto.split == s)[0]
        photos = {os.path.abspath(proto.a[k]) for k in m} | {os.path.abspath(proto.b[k]) for k in m}
        idents = {proto.identity_a[k] for k in m} | {proto.identity_b[k] for k in m}
        out[int(s)] = (photos, idents)
    return out


def training_photos(
    proto: PairProtocol, photos_of: dict[str, list[str]], n_ind: int = 12, seed: int = 0
) -> dict[tuple[str, int], list[str]]:
    """`(identity, split) -> up to n_ind of its photos outside that split` (only where 3 or more remain)."""
    rng = random.Random(seed)
    out: dict[tuple[str, int], list[str]] = {}
    for s, (s_photos, s_idents) in split_sets(proto).items():
        for ident in sorted(s_idents):
            keep = [p for p in photos_of.get(ident, []) if p not in s_photos]
            if len(keep) >= MIN_IDENTITY_PHOTOS:
                out[(ident, s)] = sorted(rng.sample(keep, min(n_ind, len(keep))))
    return out


def metric_pair_scores(
    proto: PairProtocol,
    head,
    index_dir: Path,
    gallery: dict[str, list[str]] | None = None,
    n_ind: int = 12,
    n_arb: int = 100,
    global_identities: int = 400,
    steps: int = 150,
    seed: int = 0,
    progress_for: Callable[[str], object] | None = None,
    index_photos: Callable[[list[str]], None] | None = None,
) -> dict:
    """Scores of every pair under each of `VARIANTS` (higher = more alike), and how the metrics were found.

    Returns `{"scores": {variant: (n,) float64}, "missing": (n,) bool, "identity_metric_pairs": int,
    "identity_metrics": int, "global_metrics": [info...]}`.
    """
    splits = split_sets(proto)
    train = training_photos(proto, identity_photos(proto, gallery), n_ind, seed)
    pair_photos = sorted({os.path.abspath(p) for p in proto.a + proto.b})
    extra = sorted({p for v in train.values() for p in v} - set(pair_photos))
    if extra and index_photos is not None:  # the gallery photos a metric learns from need a box and landmarks
        index_photos(extra)
    cache = MapCache(head, index_dir)
    need = pair_photos + sorted({p for v in train.values() for p in v})
    cache.ensure(need, progress_for("feature maps") if progress_for else None)
    have = set(cache.maps)
    ident_of = {}
    for p, i in zip(proto.a + proto.b, proto.identity_a + proto.identity_b, strict=True):
        ident_of[os.path.abspath(p)] = i

    n = len(proto)
    out = {v: np.full(n, MISSING_SCORE) for v in VARIANTS}
    a_abs = [os.path.abspath(p) for p in proto.a]
    b_abs = [os.path.abspath(p) for p in proto.b]
    missing = np.array([not (x in have and y in have) for x, y in zip(a_abs, b_abs, strict=True)])
    n_ident_pairs, n_ident_metrics, global_infos = 0, 0, []
    bar = progress_for("metrics") if progress_for else None
    if bar is not None:
        bar.start(len(splits))
    for s, (_, s_idents) in splits.items():
        # the pool outside this split: photos of other identities, for P_arb and the global metric
        pool = [p for p in pair_photos if p in have and ident_of[p] not in s_idents]
        by_id: dict[str, list[str]] = {}
        for p in pool:
            by_id.setdefault(ident_of[p], []).append(p)
        multi = [i for i in sorted(by_id) if len(by_id[i]) >= 2]
        chosen = random.Random(f"{seed}/{s}").sample(multi, min(global_identities, len(multi)))
        g_paths = [p for i in chosen for p in by_id[i][:4]]
        g_metric = None
        if len(chosen) >= 2:
            g_metric = learn_global_metric(
                cache.get(g_paths), [ident_of[p] for p in g_paths], steps=2 * steps, seed=seed
            )
            global_infos.append({"split": s, **g_metric.info})
        arb_paths = random.Random(f"{seed}/{s}/arb").sample(pool, min(n_arb, len(pool)))
        arb = cache.get(arb_paths) if len(arb_paths) >= 2 else None
        metrics: dict[str, Metric] = {}
        for ident in sorted(s_idents):
            paths = [p for p in train.get((ident, s), []) if p in have]
            if arb is not None and len(paths) >= MIN_IDENTITY_PHOTOS:
                metrics[ident] = learn_metric(cache.get(paths), arb, steps=steps, seed=seed)
        n_ident_metrics += len(metrics)
        for k in np.nonzero((proto.split == s) & ~missing)[0]:
            fa, fb = cache.get([a_abs[k], b_abs[k]])
            out["plain"][k] = -float(plain_distance(fa, fb[None])[0])
            if g_metric is not None:
                out["global"][k] = -float(g_metric.distance(fa, fb[None])[0]) / g_metric.info["d_ref"]
            own = [metrics[i] for i in (proto.identity_a[k], proto.identity_b[k]) if i in metrics]
            if own:
                n_ident_pairs += 1
                out["metric"][k] = -float(np.mean([m.distance(fa, fb[None])[0] / m.info["d_ref"] for m in own]))
            else:
                out["metric"][k] = out["global"][k]
        if bar is not None:
            bar.advance(1, 0)
    _close(bar)
    return {
        "scores": out,
        "missing": missing,
        "identity_metric_pairs": n_ident_pairs,
        "identity_metrics": n_ident_metrics,
        "global_metrics": global_infos,
    }


def rerank_results(proto: PairProtocol, head: str, index_dir: Path, images: Path, common: dict, fn, progress_for):
    """The `metric_pairs.VARIANTS` scorings of `proto`, each as `fn(name, scores, proto, extra)`; [] if the head
    has no feature maps. The identities' other photos come from `images/<identity>/` when it is laid out so."""
    from lookalike.eval.embed import embed_photos
    from lookalike.eval.generate import gallery_from_folder
    from lookalike.heads import create_head

    h = create_head(head)
    if not h.can(FEATURE_MAPS):
        return []
    t0 = time.perf_counter()
    idents = set(proto.identity_a) | set(proto.identity_b)
    gallery = gallery_from_folder(images, only=idents) if Path(images).is_dir() else {}

    def index_photos(paths: list[str]) -> None:
        labels = {p: Path(p).parent.name for p in paths}
        bar = progress_for(f"{head} gallery photos") if progress_for else None
        embed_photos(paths, head, index_dir, labels=labels, progress=bar)

    res = metric_pair_scores(proto, h, index_dir, gallery=gallery, progress_for=progress_for, index_photos=index_photos)
    secs = round(time.perf_counter() - t0, 1)
    how = {
        "identity_metric_pairs": res["identity_metric_pairs"],
        "identity_metrics": res["identity_metrics"],
        "global_metrics": res["global_metrics"],
    }
    return [
        fn(
            f"{head} + {label}",
            res["scores"][v],
            proto,
            {**common, "pairs_with_missing_face": int(res["missing"].sum()), "seconds": secs, "rerank": how},
        )
        for v, label in VARIANTS.items()
    ]


def rerank_note(results: list[dict]) -> list[str]:
    """Markdown lines under a table that holds `--rerank metric` rows: what each row is, and how metrics were found."""
    lines = [
        "`--rerank metric` rows score each pair by feature-map distances instead of the embedding cosine "
        "(lookalike/eval/metric_pairs.py): `maps plain (eq. 12)` is ||f_a - f_b|| on the L2-normalised block8 "
        "maps; `global metric (eq. 11)` weights them by one metric learnt across the labelled identities of the "
        "other splits; `metric (eq. 11)` is what `query --rerank metric` does: the metric of the pair's "
        "identities, learnt from their photos outside the pair's split (>= 3), else the global metric. Nothing "
        "of a pair's split is learnt from.",
        "",
    ]
    seen = set()
    for r in results:
        how = r["rerank"]
        key = (r["head"].split(" + ")[0], r.get("protocol"))
        if key in seen:
            continue
        seen.add(key)
        g = how["global_metrics"]
        acc = np.mean([x["pair_accuracy"] for x in g]) if g else float("nan")
        ids = np.mean([x["identities"] for x in g]) if g else 0
        lines.append(
            f"- `{key[0]}`{' on ' + key[1] if key[1] else ''}: {how['identity_metrics']} identity metrics; "
            f"{how['identity_metric_pairs']} of {r['pairs']} pairs scored by them, the rest by the global metric "
            f"({len(g)} of them, one per split, each from {ids:.0f} identities; training pair accuracy "
            f"{100 * acc:.1f}%)."
        )
    return lines
