"""The similarity metrics of seeds 001, 002 and 004 per head on real photos (LFW + the DoppelVer pair list).

- Triplet accuracy (seed 004): share of triplets whose positive is closer than the negative, distance
  1 - cosine of main-face embeddings; overall and per `kind`.
- Retrieval top-1/2/5 over m = 10, 20, 60 references (seed 002, Table 1): anchors are photos of DoppelVer
  people held by LFW, the true reference a photo of their doppelganger, the m - 1 distractors one photo each of
  other LFW people (in no DoppelVer pair).
- Top-ranked precision k = 1..6 and NDCG@6 (seed 001, Table 3 and eq. 2) on a rankings file of people's average
  positions, or, since no human rankings exist offline, on PROXY rankings: the doppelganger photo is position 0
  and 5 random other people tie for positions 1..5 (average 3.0 each).

Writes `similarity.md` and `similarity.json`; embeddings are cached in each head's `bench-<head>` index.
"""

from __future__ import annotations

import csv
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike import config
from lookalike.errors import LookalikeError, WeightsMissingError
from lookalike.eval import report
from lookalike.eval.embed import PhotoVectors, embed_photos
from lookalike.eval.lfw import bench_index_dir
from lookalike.eval.similarity import ndcg, retrieval_table, top_ranked_precision, triplet_accuracy
from lookalike.faces.detect import DEFAULT_DETECTOR
from lookalike.similarity.train import Triplets, load_triplets

#: Default size of the built triplet file: minutes per head on a CPU, not hours.
DEFAULT_IDENTITY = 300
DEFAULT_PER_PAIR = 10
#: Reference-set sizes and k of seed 002's Table 1.
MS = (10, 20, 60)
KS = (1, 2, 5)
#: Anchor photos per DoppelVer person, and other people per proxy ranking query.
ANCHORS_PER_PERSON = 3
PROXY_OTHERS = 5
PROXY_OTHER_POSITION = 3.0  # positions 1..5 tied: their average
PROXY_RULE = (
    "PROXY rankings (no human rankings offline): per query photo of a DoppelVer person, 6 candidates: one photo "
    "of their doppelganger (position 0) and 5 random other LFW people (tied for positions 1..5, average 3.0 each)"
)


@dataclass
class LookalikeSet:
    """The retrieval photos, chosen once (seeded) for every head.

    anchors, references: one row per anchor; references[i] is a photo of anchors[i]'s doppelganger.
    persons: `"A -> B"` of each row. distractors: one photo each of other LFW people (in no DoppelVer pair).
    """

    anchors: list[str]
    references: list[str]
    persons: list[str]
    distractors: list[str]
    pairs: int


@dataclass
class Rankings:
    """Per query photo: its candidates and people's average position of each (0 = most alike)."""

    queries: list[str]
    candidates: list[list[str]]
    positions: list[np.ndarray]
    source: str


def _photos(root: Path, name: str) -> list[str]:
    return [os.path.abspath(p) for p in sorted((root / name).glob("*.jpg"))]


def doppel_pairs(data: Path) -> list[tuple[str, str]]:
    """The DoppelVer identity pairs held by LFW: `data/doppelver/doppelganger_pairs_in_lfw.csv`."""
    f = Path(data) / "doppelver" / "doppelganger_pairs_in_lfw.csv"
    if not f.exists():
        raise LookalikeError(f"no DoppelVer pair list at {f}")
    with f.open() as fh:
        return [(r["identity_a"], r["identity_b"]) for r in csv.DictReader(fh)]


def choose_lookalike_set(data: Path, seed: int = 0, max_pairs: int | None = None, pool: int = 200) -> LookalikeSet:
    """Anchors (both directions of each pair, up to 3 photos per person), references and distractors."""
    root = Path(data) / "lfw" / "images"
    if not root.is_dir():
        raise LookalikeError(f"no LFW images at {root}")
    rng = random.Random(seed)
    all_pairs = doppel_pairs(data)
    pairs = all_pairs[:max_pairs] if max_pairs else all_pairs
    sample: dict[str, list[str]] = {}
    for name in sorted({n for p in pairs for n in p}):
        photos = _photos(root, name)
        sample[name] = rng.sample(photos, min(ANCHORS_PER_PERSON, len(photos)))
    anchors, refs, persons = [], [], []
    for a, b in pairs:
        for x, y in ((a, b), (b, a)):
            if not sample[x] or not sample[y]:
                continue
            for j, photo in enumerate(sample[x]):
                anchors.append(photo)
                refs.append(sample[y][j % len(sample[y])])  # a different doppelganger photo per anchor if any
                persons.append(f"{x} -> {y}")
    in_pairs = {n for p in all_pairs for n in p}
    others = [p.name for p in sorted(root.iterdir()) if p.is_dir() and p.name not in in_pairs]
    chosen = rng.sample(others, min(pool, len(others)))
    distractors = [rng.choice(ph) for n in chosen if (ph := _photos(root, n))]
    return LookalikeSet(anchors, refs, persons, distractors, len(pairs))


def proxy_rankings(ls: LookalikeSet, seed: int = 0) -> Rankings:
    """Seed 001's 6-candidate rankings with a proxy for people's positions (see `PROXY_RULE`)."""
    if len(ls.distractors) < PROXY_OTHERS:
        raise LookalikeError(f"proxy rankings need {PROXY_OTHERS} or more distractor photos")
    rng = random.Random(seed + 1)
    pos = np.array([0.0] + [PROXY_OTHER_POSITION] * PROXY_OTHERS)
    cands = [[ref, *rng.sample(ls.distractors, PROXY_OTHERS)] for ref in ls.references]
    return Rankings(list(ls.anchors), cands, [pos] * len(cands), "proxy")


def load_rankings(path: Path) -> Rankings:
    """A CSV of people's rankings: columns query, candidate, position (average position, 0 = most alike).

    Relative photo paths are taken relative to the file's folder; rows of one query need not be adjacent.
    """
    path = Path(path)

    def absolute(p: str) -> str:
        return p if os.path.isabs(p) else str((path.parent / p).resolve())

    groups: dict[str, list[tuple[str, float]]] = {}
    try:
        with path.open(newline="") as fh:
            rows = csv.DictReader(fh)
            if not {"query", "candidate", "position"} <= set(rows.fieldnames or []):
                raise LookalikeError(f"rankings file {path} needs columns query, candidate, position")
            for r in rows:
                groups.setdefault(absolute(r["query"]), []).append((absolute(r["candidate"]), float(r["position"])))
    except (OSError, ValueError) as e:
        raise LookalikeError(f"cannot read rankings file {path}: {e}") from None
    if not groups:
        raise LookalikeError(f"rankings file {path} has no rows")
    return Rankings(
        list(groups),
        [[c for c, _ in g] for g in groups.values()],
        [np.array([p for _, p in g]) for g in groups.values()],
        str(path),
    )


def default_triplets(data: Path, seed: int = 0) -> tuple[Triplets, str]:
    """A modest triplet file built from the shared data (`build_triplets`), with how it was made."""
    from lookalike.similarity.triplets import build_triplets

    t = build_triplets(Path(data), n_identity=DEFAULT_IDENTITY, per_pair=DEFAULT_PER_PAIR, seed=seed)

    def col(name: str) -> list[str]:
        return [os.path.abspath(p) for p in t[name].to_pylist()]

    trip = Triplets(col("anchor"), col("positive"), col("negative"), np.ones(t.num_rows), t["kind"].to_pylist())
    how = (
        f"built by build_triplets(n_identity={DEFAULT_IDENTITY}, per_pair={DEFAULT_PER_PAIR}, seed={seed}): "
        "doppel = DoppelVer person / their doppelganger / a random other LFW person; identity = two photos of "
        "one LFW person / a random other person"
    )
    return trip, how


def _cos(pv: PhotoVectors, a: list[str], b: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of each pair and whether both photos have a face: `((n,) float64, (n,) bool)`."""
    ra, rb = pv.rows(a), pv.rows(b)
    s = np.einsum("ij,ij->i", pv.vectors[ra], pv.vectors[rb]).astype(np.float64)
    return s, pv.found[ra] & pv.found[rb]


def score_triplets(pv: PhotoVectors, trip: Triplets) -> dict:
    """Triplet accuracy (distance 1 - cosine) overall and per kind; triplets with a faceless photo left out."""
    cap, ok_p = _cos(pv, trip.anchor, trip.positive)
    can, ok_n = _cos(pv, trip.anchor, trip.negative)
    ok = ok_p & ok_n
    if not ok.any():
        raise LookalikeError("no triplet has a face in all three photos")
    d_ap, d_an = 1 - cap, 1 - can
    out = {"accuracy": triplet_accuracy(d_ap[ok], d_an[ok]), "triplets": int(ok.sum()), "left_out": int((~ok).sum())}
    kinds = np.asarray(trip.kind) if trip.kind else None
    out["by_kind"] = {}
    if kinds is not None:
        for k in sorted(set(trip.kind)):
            m = ok & (kinds == k)
            if m.any():
                out["by_kind"][k] = {"accuracy": triplet_accuracy(d_ap[m], d_an[m]), "triplets": int(m.sum())}
    return out


def score_retrieval(pv: PhotoVectors, ls: LookalikeSet, trials: int, seed: int) -> dict:
    """Top-k of the true reference among m candidates, per m the distractor pool allows."""
    _, ok = _cos(pv, ls.anchors, ls.references)
    dis = pv.vectors[pv.rows(ls.distractors)][pv.found[pv.rows(ls.distractors)]]
    a = pv.vectors[pv.rows([p for p, k in zip(ls.anchors, ok) if k])]
    r = pv.vectors[pv.rows([p for p, k in zip(ls.references, ok) if k])]
    table = retrieval_table(a, r, ms=MS, distractors=dis, ks=KS, trials=trials, seed=seed) if len(a) else {}
    return {
        "anchors": int(ok.sum()),
        "anchors_left_out": int((~ok).sum()),
        "distractors": len(dis),
        "table": {str(m): {f"top{k}": v for k, v in res.items()} for m, res in table.items()},
    }


def score_rankings(pv: PhotoVectors, rk: Rankings) -> dict:
    """Top-ranked precision (model rank of people's first choice) and mean NDCG over the queries."""
    ranks, gains, left = [], [], 0
    for q, cands, pos in zip(rk.queries, rk.candidates, rk.positions):
        cos, ok = _cos(pv, [q] * len(cands), cands)
        if not ok.all():
            left += 1
            continue
        d = 1 - cos
        best = int(np.argmin(pos))
        ranks.append(1 + int((d < d[best]).sum()))  # ties count in its favour, as in retrieval
        gains.append(ndcg(pos[np.argsort(d, kind="stable")], n=len(cands)))
    if not ranks:
        raise LookalikeError("no ranking query has a face in every photo")
    trp = top_ranked_precision(ranks, k_max=6)
    return {
        "queries": len(ranks),
        "queries_left_out": left,
        "top_ranked_precision": {str(k): v for k, v in trp.items()},
        "ndcg6": float(np.mean(gains)),
    }


def evaluate_head(
    head: str, trip: Triplets, ls: LookalikeSet, rk: Rankings, trials: int, seed: int, progress=None
) -> dict:
    """Embed every photo the three parts need (one indexing run) and score them with `head`."""
    t0 = time.perf_counter()
    paths = trip.anchor + trip.positive + trip.negative + ls.anchors + ls.references + ls.distractors
    paths += rk.queries + [c for cs in rk.candidates for c in cs]
    missing = sorted({p for p in paths if not Path(p).exists()})
    if missing:
        raise LookalikeError(f"{len(missing)} photos are missing, e.g. {missing[0]}")
    labels = {os.path.abspath(p): Path(p).parent.name for p in paths}
    pv = embed_photos(paths, head, bench_index_dir(head), labels=labels, progress=progress)
    return {
        "head": head,
        "triplets": score_triplets(pv, trip),
        "retrieval": score_retrieval(pv, ls, trials, seed),
        "rankings": score_rankings(pv, rk),
        "photos": len(pv.paths),
        "photos_without_face": int((~pv.found).sum()),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def run_similarity(
    heads: list[str],
    out_dir: Path | None,
    triplets_file: Path | None = None,
    data: Path | None = None,
    seed: int = 0,
    progress_for=None,
    rankings_file: Path | None = None,
    max_pairs: int | None = None,
    pool: int = 200,
    trials: int = 10,
) -> dict:
    """Evaluate every head (skipping those without weights); write `similarity.md` / `.json` into `out_dir`.

    Args:
        triplets_file: Parquet/CSV triplets (anchor, positive, negative[, kind]); default built from `data`.
        data: the shared data folder (`lfw/images`, `doppelver/doppelganger_pairs_in_lfw.csv`).
        rankings_file: CSV query, candidate, position of people's rankings; default the proxy rankings.
        max_pairs: only the first N DoppelVer pairs for retrieval and rankings (quick check).
        pool: distractor people (one photo each); m is reported where m - 1 <= the pool's faces.
        trials: retrieval draws of distractors per anchor.
    """
    data = Path(data or config.data_dir())
    if triplets_file is not None:
        trip, trip_how = load_triplets(triplets_file), f"file {triplets_file}"
    else:
        trip, trip_how = default_triplets(data, seed)
    ls = choose_lookalike_set(data, seed, max_pairs, pool)
    rk = load_rankings(rankings_file) if rankings_file is not None else proxy_rankings(ls, seed)
    results, skipped = [], []
    for head in heads:
        try:
            results.append(
                evaluate_head(head, trip, ls, rk, trials, seed, progress_for(head) if progress_for else None)
            )
        except WeightsMissingError as e:
            skipped.append({"head": head, "reason": str(e)})
    kinds = {k: trip.kind.count(k) for k in sorted(set(trip.kind))}
    out = {
        "benchmark": "similarity metrics of seeds 001, 002, 004 (triplet accuracy, retrieval top-k, "
        "top-ranked precision, NDCG@6)",
        "date": report.today(),
        "machine": report.machine(),
        "data": str(data),
        "detector": DEFAULT_DETECTOR,
        "seed": seed,
        "triplets": {"source": trip_how, "count": len(trip), "kinds": kinds},
        "retrieval": {
            "pairs": ls.pairs,
            "anchors": len(ls.anchors),
            "distractor_people": len(ls.distractors),
            "trials": trials,
            "rule": f"anchors: up to {ANCHORS_PER_PERSON} photos of each DoppelVer person (both directions of "
            "every pair); true reference: a photo of their doppelganger; m - 1 distractors drawn per anchor and "
            "trial from one photo each of other LFW people (in no DoppelVer pair); Euclidean on L2-normalised "
            "embeddings",
        },
        "rankings": {
            "source": rk.source,
            "queries": len(rk.queries),
            "rule": PROXY_RULE if rk.source == "proxy" else f"people's average positions from {rk.source}",
        },
        "missing_face_rule": "a triplet, anchor or ranking query with a photo where no face is found is counted "
        "and left out",
        "results": results,
        "skipped": skipped,
    }
    if out_dir is not None:
        report.write_report(out_dir, "similarity", out, similarity_markdown(out))
    return out


def summary_line(r: dict) -> str:
    """One human line per head."""
    t, rt, rk = r["triplets"], r["retrieval"], r["rankings"]
    kinds = ", ".join(f"{k} {report.pct(v['accuracy'])}%" for k, v in t["by_kind"].items())
    ret = "; ".join(
        f"m={m} top-1 {report.pct(v['top1'], 1)}% top-5 {report.pct(v['top5'], 1)}%" for m, v in rt["table"].items()
    )
    return (
        f"{r['head']}: triplets {report.pct(t['accuracy'])}%" + (f" ({kinds})" if kinds else "")
        + f"; retrieval {ret or 'n/a'}; top-ranked precision@1 {report.pct(rk['top_ranked_precision']['1'], 1)}%, "
        f"NDCG@6 {rk['ndcg6']:.3f} ({r['seconds']} s)"
    )  # fmt: skip


def similarity_markdown(out: dict) -> str:
    res = out["results"]
    kinds = list(out["triplets"]["kinds"])
    proxy = out["rankings"]["source"] == "proxy"
    lines = [
        "# Similarity metrics (seeds 001, 002, 004)",
        "",
        f"- Date: {out['date']}",
        f"- Machine: {report.machine_line(out['machine'])}",
        f"- Data: `{out['data']}` (LFW photos, detected with {out.get('detector', DEFAULT_DETECTOR)}, main face); "
        f"seed {out['seed']}",
        f"- Missing faces: {out['missing_face_rule']}.",
        "",
        "## Triplet accuracy (seed 004)",
        "",
        f"Triplets: {out['triplets']['source']}; {out['triplets']['count']} triplets"
        + (" (" + ", ".join(f"{n} {k}" for k, n in out["triplets"]["kinds"].items()) + ")" if kinds else "")
        + ". A triplet is right when 1 - cosine(anchor, positive) < 1 - cosine(anchor, negative).",
        "",
        "| head | overall % | " + " | ".join(f"{k} %" for k in kinds) + (" | " if kinds else "")
        + "triplets | left out |",
        "| --- | --- | " + "--- | " * len(kinds) + "--- | --- |",
    ]  # fmt: skip
    for r in res:
        t = r["triplets"]
        per = [report.pct(t["by_kind"][k]["accuracy"]) if k in t["by_kind"] else "n/a" for k in kinds]
        lines.append(
            f"| {r['head']} | {report.pct(t['accuracy'])} | " + "".join(f"{p} | " for p in per)
            + f"{t['triplets']} | {t['left_out']} |"
        )  # fmt: skip
    rt = out["retrieval"]
    cols = [(str(m), k) for m in MS for k in KS]
    lines += [
        "",
        "## Retrieval top-k over m references (seed 002, Table 1)",
        "",
        f"{rt['anchors']} anchors from {rt['pairs']} DoppelVer pairs, {rt['distractor_people']} distractor people, "
        f"{rt['trials']} trials. {rt['rule']}. n/a: the pool holds fewer than m - 1 faces.",
        "",
        "| head | " + " | ".join(f"m={m} top-{k} %" for m, k in cols) + " | anchors |",
        "| --- | " + "--- | " * len(cols) + "--- |",
    ]
    for r in res:
        tab = r["retrieval"]["table"]
        cells = [report.pct(tab[m][f"top{k}"]) if m in tab else "n/a" for m, k in cols]
        lines.append(f"| {r['head']} | " + " | ".join(cells) + f" | {r['retrieval']['anchors']} |")
    rk = out["rankings"]
    lines += [
        "",
        "## Top-ranked precision and NDCG@6 (seed 001, Table 3 and eq. 2)",
        "",
        ("**Proxy, not human rankings.** " if proxy else "**Rankings from a file.** ") + f"{rk['rule']}. "
        "Top-ranked precision@k: share of queries whose people's first choice is in the model's top k "
        "(order by 1 - cosine).",
        "",
        "| head | precision@1 % | precision@2 % | precision@3 % | NDCG@6 | queries |",
        "| --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for r in res:
        q = r["rankings"]
        p = q["top_ranked_precision"]
        lines.append(
            f"| {r['head']} | {report.pct(p['1'])} | {report.pct(p['2'])} | {report.pct(p['3'])} | "
            f"{q['ndcg6']:.4f} | {q['queries']} |"
        )
    lines += ["", "| head | photos | without face | time s |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['head']} | {r['photos']} | {r['photos_without_face']} | {r['seconds']} |" for r in res]
    if out["skipped"]:
        lines += ["", "Skipped:", ""] + [f"- {s['head']}: {s['reason']}" for s in out["skipped"]]
    return "\n".join(lines) + "\n"
