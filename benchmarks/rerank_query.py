"""`lookalike query --rerank metric` on and off: where does a real doppelganger land among LFW people?

Gallery (one `lookalike` index, facenet-casia, every photo labelled by its LFW folder):
- 300 random LFW people (none in a DoppelVer pair) with up to 4 photos each: the labelled identities a global
  metric learns from;
- 700 more random people, 1 photo each: distractors;
- every DoppelVer person LFW holds, up to 5 photos each.
Queries: each of those DoppelVer photos, asking "who looks like this?" in identities mode with the person's own
identity left out (`--identity A`), so the answer to find is their DoppelVer doppelganger B. FAISS hands the
top 50 identities to the reranker; a doppelganger outside them keeps its cosine rank in every row.
Rows: off (cosine), and `--metric-from` auto (A's identity metric from A's labelled faces when there are 3 or
more, which include the query photo: what a user querying a labelled person gets; else the global one),
global (learnt across the 300 people only, so it never saw A or B), photo (the query's augmentations against
100 gallery faces).
Writes rerank_query.md and .json. Run: `python benchmarks/rerank_query.py [--work out/rerank]`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from lookalike import config
from lookalike.eval.report import machine, machine_line, today
from lookalike.faces.detect import FaceDetector
from lookalike.heads import create_head
from lookalike.index.runner import IndexOptions, run_index
from lookalike.search.query import Searcher
from lookalike.search.rerank import MetricReranker
from lookalike.similarity.metric import learn_global_metric

HERE = Path(__file__).resolve().parent
CANDIDATES = 50


def gallery(seed: int = 0) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """`{photo path: identity}` and the directed doppelganger pairs (A, B) whose people are both in it."""
    root = config.data_dir() / "lfw" / "images"
    rows = list(csv.DictReader((config.data_dir() / "doppelver" / "doppelganger_pairs_in_lfw.csv").open()))
    doppel = sorted({x for r in rows for x in (r["identity_a"], r["identity_b"])})
    people = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in set(doppel))
    random.Random(seed).shuffle(people)
    photos = {p: sorted(str(f) for f in (root / p).glob("*.jpg")) for p in people + doppel}
    multi = [p for p in people if len(photos[p]) >= 2][:300]
    singles = [p for p in people if p not in set(multi)][:700]
    labels = {}
    for p in multi:
        labels.update({f: p for f in photos[p][:4]})
    for p in singles:
        labels[photos[p][0]] = p
    for p in doppel:
        labels.update({f: p for f in photos[p][:5]})
    pairs = [(a, b) for r in rows for a, b in ((r["identity_a"], r["identity_b"]), (r["identity_b"], r["identity_a"]))]
    return labels, [(a, b) for a, b in pairs if photos.get(a) and photos.get(b)]


def rank_of(matches, target: str) -> int | None:
    for m in matches:
        if m.identity == target:
            return m.rank
    return None


def summary(ranks: list[int]) -> dict:
    r = np.asarray(ranks, np.float64)
    return {
        "queries": len(r),
        "median_rank": float(np.median(r)),
        "mrr": round(float((1 / r).mean()), 4),
        "top1": round(float((r <= 1).mean()), 4),
        "top10": round(float((r <= 10).mean()), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("out/rerank"))
    args = ap.parse_args()
    if not (config.data_dir() / "lfw").exists():
        sys.exit(f"shared data not found at {config.data_dir()}")
    labels, pairs = gallery()
    ix = args.work / "gallery-facenet-casia"
    args.work.mkdir(parents=True, exist_ok=True)
    listing = args.work / "gallery.txt"
    listing.write_text("\n".join(sorted(labels)) + "\n")
    t0 = time.perf_counter()
    head = create_head("facenet-casia")
    rep = run_index(
        listing, ix, head, FaceDetector(), IndexOptions(labels={os.path.abspath(p): i for p, i in labels.items()})
    )
    t_index = time.perf_counter() - t0

    s = Searcher(ix)
    rr = MetricReranker(s)
    doppel = {x for pr in pairs for x in pr}
    counts: dict[str, int] = {}
    for i in labels.values():
        counts[i] = counts.get(i, 0) + 1
    multi = {i for i, n in counts.items() if n >= 2 and i not in doppel}  # the 300 people, not the 700 singles
    meta = s.store.faces(["face_id", "identity"])
    ident = dict(zip(meta["face_id"].to_pylist(), meta["identity"].to_pylist(), strict=True))
    faces = [f for f, i in sorted(ident.items()) if i in multi]
    g = learn_global_metric(rr.maps_of(faces), [ident[f] for f in faces], steps=300)
    rr.fixed_global = g  # learnt on the 300 people only: it never saw a DoppelVer person
    rows: dict[str, list[int]] = {"off": [], "auto": [], "global": [], "photo": []}
    hows: dict[str, int] = {}
    per_query = []
    t1 = time.perf_counter()
    for a, b in pairs:
        for path in sorted(p for p, i in labels.items() if i == a):
            ranks = {}
            for source in rows:
                ans = s.query_photos([path], k=CANDIDATES, mode="identities", identity=a)[0]
                if ans.error:
                    break
                cos_rank = rank_of(ans.results, b)
                if cos_rank is None:  # outside the top 50: no reranking can reach it
                    full = s.query_photos([path], k=s.size, mode="identities", identity=a)[0]
                    ranks[source] = rank_of(full.results, b) or s.size
                    continue
                if source != "off":  # the query's own face crop, as `lookalike query --rerank metric` uses it
                    ans.results, how = rr.rerank(ans.face.crop, ans.sha256, ans.results, CANDIDATES, a, source)
                    if source == "auto":
                        hows[how.split()[0]] = hows.get(how.split()[0], 0) + 1
                ranks[source] = rank_of(ans.results, b)
            if len(ranks) == len(rows):
                for k, v in ranks.items():
                    rows[k].append(v)
                per_query.append({"query": Path(path).name, "target": b, **ranks})
    out = {
        "benchmark": "query --rerank metric on/off: rank of the DoppelVer doppelganger among LFW identities",
        "date": today(),
        "machine": machine(),
        "gallery": {"photos": len(labels), "identities": len(set(labels.values())), "index_seconds": round(t_index)},
        "photos_indexed_this_run": rep.files_processed,
        "global_metric": g.info,
        "results": {k: summary(v) for k, v in rows.items()},
        "auto_used": hows,
        "rerank_seconds": round(time.perf_counter() - t1),
        "queries": per_query,
    }
    (HERE / "rerank_query.json").write_text(json.dumps(out, indent=2, default=str))
    lines = [
        "# `query --rerank metric` on and off (facenet-casia)",
        "",
        "Rank of a real doppelganger (DoppelVer pair list) when a photo of its look-alike is queried in identities",
        "mode with the query's own identity left out. Gallery: "
        f"{out['gallery']['photos']} LFW photos of {out['gallery']['identities']} people (300 with up to 4 photos,",
        "700 with 1, every DoppelVer person with up to 5); FAISS's top 50 identities are reranked. Produced by",
        "`benchmarks/rerank_query.py` (see its docstring for how each metric is learnt); numbers as they came out.",
        "",
        f"- Date: {out['date']}",
        f"- Machine: {machine_line(out['machine'])}",
        f"- Global metric: {g.info['identities']} identities, {g.info['faces']} faces, training pair accuracy "
        f"{100 * g.info['pair_accuracy']:.1f}%",
        f"- `auto` used: {', '.join(f'{k} {v}' for k, v in sorted(hows.items()))} (queries reaching the reranker)",
        f"- Time: indexing {out['gallery']['index_seconds']} s ({rep.files_processed} photos embedded this run; an "
        f"existing index is reused), reranking all queries {out['rerank_seconds']} s",
        "",
        "| ranking | queries | median rank | MRR | top-1 % | top-10 % |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = {
        "off": "off (cosine)",
        "auto": "--metric-from auto (identity, else global)",
        "global": "--metric-from global",
        "photo": "--metric-from photo",
    }
    for k, r in out["results"].items():
        lines.append(
            f"| {names[k]} | {r['queries']} | {r['median_rank']:.1f} | {r['mrr']:.3f} | {100 * r['top1']:.1f} | "
            f"{100 * r['top10']:.1f} |"
        )
    (HERE / "rerank_query.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
