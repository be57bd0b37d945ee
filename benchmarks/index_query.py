"""Benchmark of the index-and-query path, per head, on real photos; writes index_query.md and .json.

Measures, for every head whose weights are here:
- leave-one-out top-1/top-5 on the shared galleries (faces mode, the query's own file left out);
- how high a DoppelVer doppelganger ranks among LFW people (identities mode);
- indexing throughput (photos/s, faces/s) on this CPU;
- query latency p50/p95, cold (a fresh `lookalike query` process) and warm (in-process), for an index of ~1k
  real faces and one of 100k+ vectors; peak memory.

Usage: python benchmarks/index_query.py [--heads sface facenet-casia] [--work DIR]
Needs the shared data folder ($LOOKALIKE_DATA, default ../shared/data).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from lookalike import config
from lookalike.eval.retrieval import leave_one_out
from lookalike.faces.detect import create_detector
from lookalike.heads import DEFAULT_HEAD, create_head, list_heads
from lookalike.index.runner import run_index
from lookalike.index.store import REJECTS_SCHEMA, FaceStore, vectors_of
from lookalike.search.query import Searcher

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import run_measured  # benchmarks/harness.py: a run's wall time and its process-tree peak

HERE = Path(__file__).resolve().parent
GALLERIES = ["lfw10", "five_celebrity", "bbt", "deepface"]


def machine() -> dict:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": dt.date.today().isoformat(),
    }


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def galleries(head, detector, work: Path) -> dict:
    out = {}
    for g in GALLERIES:
        src = config.data_dir() / "gallery" / g
        if not src.exists():
            continue
        ix = work / f"{g}-{head.name}"
        t0 = time.perf_counter()
        rep = run_index(src, ix, head, detector)
        secs = time.perf_counter() - t0
        loo = leave_one_out(Searcher(ix, load_head=False))
        out[g] = {
            "photos": rep.files_seen,
            "faces": rep.counts["faces"],
            "rejects": rep.counts["rejects"],
            "index_seconds": round(secs, 2) if rep.files_processed else None,
            "queries": loo["queries"],
            "top1": round(loo["top1"], 4),
            "top5": round(loo["top5"], 4),
        }
    return out


def lfw_doppel_gallery(
    seed: int = 0, n_people: int = 1000, others_keep: int = 1
) -> tuple[list[Path], dict[str, str], list[tuple[str, str]]]:
    """`others_keep` photos each of n random LFW people + the 28 DoppelVer people in LFW (up to 10 photos each)."""
    root = config.data_dir() / "lfw" / "images"
    pairs_csv = config.data_dir() / "doppelver" / "doppelganger_pairs_in_lfw.csv"
    pairs = [tuple(line.split(",")[:2]) for line in pairs_csv.read_text().splitlines()[1:] if line.strip()]
    doppel = {p for pair in pairs for p in pair}
    people = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in doppel)
    random.Random(seed).shuffle(people)
    paths, labels = [], {}
    for person in people[:n_people] + sorted(doppel):
        files = sorted((root / person).glob("*.jpg"))
        keep = files if person in doppel else files[:others_keep]
        for f in keep[:10]:
            paths.append(f)
            labels[os.path.abspath(f)] = person
    return paths, labels, pairs


def doppel_ranks(ix: Path, pairs: list[tuple[str, str]]) -> dict:
    """For each doppelganger pair (a, b), both ways: rank of b among all other identities when querying a.

    Gallery side: only b's first photo counts (every identity is there with exactly one photo), so b has no
    more chances than anyone else.
    """
    s = Searcher(ix, load_head=False)
    faces = s.store.faces(["path", "identity", "is_main", "sha256", "embedding"])
    ident = faces["identity"].to_pylist()
    main = faces["is_main"].to_pylist()
    paths = faces["path"].to_pylist()
    vecs = vectors_of(faces, s.store.dim)
    first: dict[str, int] = {}
    for i, (p, who, m) in enumerate(zip(paths, ident, main)):
        if m and who is not None and (who not in first or p < paths[first[who]]):
            first[who] = i
    gallery_rows = np.array(sorted(first.values()))
    g = vecs[gallery_rows]
    g_ident = [ident[r] for r in gallery_rows]
    ranks = []
    for a, b in pairs:
        for q, t in ((a, b), (b, a)):
            if t not in first:
                continue
            rows = [i for i, (who, m) in enumerate(zip(ident, main)) if who == q and m]
            for r in rows:
                sims = g @ vecs[r]
                order = [g_ident[j] for j in np.argsort(-sims) if g_ident[j] != q]
                ranks.append(order.index(t) + 1)
    ranks_a = np.asarray(ranks)
    return {
        "identities": len(first),
        "queries": len(ranks),
        "median_rank": float(np.median(ranks_a)),
        "mean_rank": round(float(ranks_a.mean()), 1),
        "top1": round(float((ranks_a <= 1).mean()), 4),
        "top10": round(float((ranks_a <= 10).mean()), 4),
        "mrr": round(float((1 / ranks_a).mean()), 4),
        "ranks": [int(r) for r in ranks_a],  # per query, in the order of the pairs: for paired comparisons
    }


def synthetic_100k(src_ix: Path, dst: Path, n: int = 100_000, seed: int = 0) -> Path:
    """An index of n vectors: the real faces of src_ix, plus noisy copies of them (unit norm), same metadata."""
    if FaceStore.exists(dst) and FaceStore.open(dst).manifest["counts"]["faces"] >= n:
        return dst
    src = FaceStore.open(src_ix)
    t = src.faces()
    base = vectors_of(t, src.dim)
    rng = np.random.default_rng(seed)
    reps = int(np.ceil(n / len(base)))
    with FaceStore.writer(dst, src.head, src.dim, src.manifest["weights_sha256"], src.manifest["params"]) as w:
        for r in range(reps):
            noise = rng.normal(0, 0.04, base.shape).astype(np.float32) if r else 0
            v = base + noise
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            part = t.set_column(
                t.schema.get_field_index("embedding"),
                "embedding",
                pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), src.dim),
            )
            part = part.set_column(1, "face_id", pa.array([f"{x}@{r}" for x in t["face_id"].to_pylist()]))
            part = part.set_column(0, "vector_id", pa.array(w.reserve_ids(len(v)), pa.int64()))
            if r:  # copies stand for other photos: their own paths and hashes (parts merge by path)
                for col in ("path", "sha256"):
                    i = part.schema.get_field_index(col)
                    part = part.set_column(i, col, pa.array([f"{x}@{r}" for x in t[col].to_pylist()]))
            w.commit_part(part, REJECTS_SCHEMA.empty_table())
        w.finalize()
    return dst


def latency(ix: Path, queries: list[Path], cold_runs: int = 7) -> dict:
    cold, cold_rss = [], []
    for q in queries[:cold_runs]:
        # /usr/bin/time reports the child's own peak RSS (a forked child would also count this process's pages)
        cmd = [sys.executable, "-m", "lookalike", "query", str(q), "--index", str(ix), "-k", "10", "--json"]
        t0 = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], check=True, capture_output=True, text=True)
        cold.append(time.perf_counter() - t0)
        cold_rss.append(int(done.stderr.strip().splitlines()[-1]) / 1024)
    cold_rss_mb = max(cold_rss)
    t0 = time.perf_counter()
    s = Searcher(ix)
    load = time.perf_counter() - t0
    s.query_photos([queries[0]])  # the first call builds the detector
    warm = []
    for q in queries:
        t0 = time.perf_counter()
        s.query_photos([q], k=10)
        warm.append(time.perf_counter() - t0)
    vec = vectors_of(s.store.faces(["embedding"]), s.store.dim)[:200]
    search_only = []
    for v in vec:
        t0 = time.perf_counter()
        s.search_vectors(v[None], k=10)
        search_only.append(time.perf_counter() - t0)
    return {
        "vectors": s.size,
        "cold_p50_s": round(pct(cold, 50), 3),
        "cold_p95_s": round(pct(cold, 95), 3),
        "cold_peak_rss_mb": round(cold_rss_mb),
        "open_index_and_head_s": round(load, 3),
        "warm_p50_ms": round(pct(warm, 50) * 1000, 1),
        "warm_p95_ms": round(pct(warm, 95) * 1000, 1),
        "search_only_p50_ms": round(pct(search_only, 50) * 1000, 2),
        "search_only_p95_ms": round(pct(search_only, 95) * 1000, 2),
    }


def render(res: dict) -> str:
    m = res["machine"]
    lines = [
        "# Index and query benchmark",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'}; Python {m['python']}, torch {m['torch']}."
        f" Date: {m['date']}. Produced by `python benchmarks/index_query.py` (raw numbers in index_query.json).",
        f"Detector: `{res.get('detector', 'mtcnn')}` (the default), FaceNet heads in {res.get('precision', 'fp32')}.",
        "",
        "## Leave-one-out on the shared galleries (faces mode, top match = same person)",
        "",
        "| head | gallery | photos | faces | rejects | queries | top-1 | top-5 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for head, gs in res["galleries"].items():
        for g, r in gs.items():
            lines.append(
                f"| {head} | {g} | {r['photos']} | {r['faces']} | {r['rejects']} | {r['queries']} | {r['top1']:.1%} | {r['top5']:.1%} |"
            )
    lines += [
        "",
        "## DoppelVer doppelgangers among LFW people (identities mode)",
        "",
        "Gallery: one photo each of 1,000 random LFW people plus the 28 people of the 14 DoppelVer pairs that LFW holds."
        " Query: each photo of one member of a pair; rank of the other member among all identities but the query's own"
        " (lower is better).",
        "",
        "| head | identities | queries | median rank | mean rank | top-1 | top-10 | MRR |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for head, r in res["doppel"].items():
        lines.append(
            f"| {head} | {r['identities']} | {r['queries']} | {r['median_rank']:.0f} | {r['mean_rank']} | {r['top1']:.1%} | {r['top10']:.1%} | {r['mrr']} |"
        )
    lines += [
        "",
        "## Indexing throughput on this CPU",
        "",
        "`lookalike index` of the LFW sample (150x150 photos) in a fresh process, timed whole: start-up, model load,"
        " read, detect, align, embed, write. Peak RSS is that of the process and its worker processes together (sampled "
        "every 50 ms).",
        "",
        "| head | photos | faces | seconds | photos/s | faces/s | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for head, r in res["throughput"].items():
        lines.append(
            f"| {head} | {r['photos']} | {r['faces']} | {r['seconds']} | {r['photos_s']} | {r['faces_s']} | {r['peak_rss_mb']} MB |"
        )
    lines += [
        "",
        f"## Query latency ({res['latency_head']})",
        "",
        "Cold: a fresh `lookalike query IMG -k 10 --json` process (Python start, imports, model and index load, detection,"
        " embedding, search). Warm: `Searcher.query_photos` in one process (detect + align + embed + search)."
        " Search only: FAISS search plus metadata, one vector. The 100k index holds the real faces plus noisy copies"
        " of their vectors (no 100k-photo face set is available offline); search cost depends only on the count.",
        "",
        "| index | vectors | cold p50 | cold p95 | cold peak RSS | warm p50 | warm p95 | search-only p50 | search-only p95 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in res["latency"].items():
        lines.append(
            f"| {name} | {r['vectors']:,} | {r['cold_p50_s']} s | {r['cold_p95_s']} s | {r['cold_peak_rss_mb']} MB | "
            f"{r['warm_p50_ms']} ms | {r['warm_p95_ms']} ms | {r['search_only_p50_ms']} ms | {r['search_only_p95_ms']} ms |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", nargs="*", default=None)
    ap.add_argument("--work", type=Path, default=Path("out/bench-index-query"))
    ap.add_argument("--out", type=Path, default=HERE / "index_query.md")
    args = ap.parse_args()
    if not config.data_dir().exists():
        sys.exit(f"shared data not found at {config.data_dir()} (set {config.DATA_ENV})")
    args.work.mkdir(parents=True, exist_ok=True)
    heads = args.heads or [h for h in list_heads() if h in ("sface", "facenet-casia", "vggface2")]
    detector = create_detector()  # the default, as `lookalike index` uses it
    res: dict = {"machine": machine(), "galleries": {}, "doppel": {}, "throughput": {}, "latency": {},
                 "detector": detector.name}  # fmt: skip
    paths, labels, pairs = lfw_doppel_gallery()
    listing = args.work / "lfw-sample.txt"
    listing.write_text("\n".join(str(p) for p in paths) + "\n")
    for name in heads:
        try:
            head = create_head(name)
        except Exception as e:  # missing weights: listed, not fatal
            print(f"skip {name}: {e}", file=sys.stderr)
            continue
        res["precision"] = head.precision
        res["engine"] = getattr(head, "engine", "own")
        print(f"[{name}] galleries", file=sys.stderr)
        res["galleries"][name] = galleries(head, detector, args.work)
        print(f"[{name}] LFW sample", file=sys.stderr)
        ix = args.work / f"lfw-sample-{name}"
        labels_csv = args.work / "lfw-sample-labels.csv"
        labels_csv.write_text("".join(f"{p},{who}\n" for p, who in labels.items()))
        # the LFW sample is indexed the way a user runs it: a fresh `lookalike index` process, timed whole
        # (start-up and model load included); /usr/bin/time gives that process's own peak RSS
        cmd = [sys.executable, "-m", "lookalike", "index", str(listing), "--out", str(ix), "--head", name]
        done = run_measured([*cmd, "--labels", str(labels_csv), "--json"], dict(os.environ), HERE)
        if done["exit"] != 0:
            raise SystemExit(f"{name}: lookalike index failed: {done['stderr'][-500:]}")
        secs = done["seconds"]
        rep = json.loads(done["stdout"].strip().splitlines()[-1])
        res["doppel"][name] = doppel_ranks(ix, pairs)
        res["throughput"][name] = {
            "photos": rep["files_processed"],
            "faces": rep["faces_added"],
            "seconds": round(secs, 1),
            "photos_s": round(rep["files_processed"] / secs, 1),
            "faces_s": round(rep["faces_added"] / secs, 1),
            "peak_rss_mb": done["peak_rss_mb"],  # the process and its workers together
        }
    head = DEFAULT_HEAD if DEFAULT_HEAD in res["doppel"] else next(iter(res["doppel"]))
    res["latency_head"] = head
    small = args.work / f"lfw-sample-{head}"
    big = synthetic_100k(small, args.work / f"synthetic-100k-{head}")
    queries = sorted((config.data_dir() / "gallery" / "five_celebrity").rglob("*.jpg"))[:30]
    print("[latency]", file=sys.stderr)
    for name, ix in (("LFW sample (1k real faces)", small), ("100k vectors", big)):
        res["latency"][name] = latency(ix, queries)
    args.out.write_text(render(res))
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=2))
    print(args.out)


if __name__ == "__main__":
    main()
