"""How well `lookalike cluster` finds people without labels, on LFW; writes cluster.md and .json.

LFW View 2's 7,701 photos, indexed per head with YuNet (cache indexes named <detector>-<head> in --work, as
benchmarks/verify.py fills them), labels hidden: every face is grouped, and the groups of the main faces are scored
against the true identities (4,281 people, most with one or two photos). BCubed precision/recall/F (per face: the
share of its group that is its person, and of its person that is in its group) and pairwise precision/recall (over
pairs of faces put together / truly together). Beside `lookalike cluster`'s method (label propagation on the
k-NN graph at the FMR 1e-4 threshold) the same graph's connected components, the FMR 1e-3 threshold, and every
face alone, for scale.

Usage: python benchmarks/cluster.py --work DIR [--heads sface facenet-casia]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np

from lookalike.curate.cluster import knn_graph, propagate
from lookalike.eval.report import machine, machine_line, today, write_report
from lookalike.heads.calibration import same_person
from lookalike.index.store import FaceStore, vectors_of

HERE = Path(__file__).resolve().parent


def scores(pred: np.ndarray, true: np.ndarray) -> dict:
    pairs, pc, tc = Counter(zip(pred.tolist(), true.tolist())), Counter(pred.tolist()), Counter(true.tolist())
    n = len(pred)
    bp = sum(c * c / pc[a] for (a, _), c in pairs.items()) / n
    br = sum(c * c / tc[b] for (_, b), c in pairs.items()) / n
    together = sum(c * (c - 1) / 2 for c in pairs.values())  # pairs put together and truly together
    put = sum(c * (c - 1) / 2 for c in pc.values())
    pp = together / put if put else None  # nothing put together: no pairwise precision
    pr = together / max(1, sum(c * (c - 1) / 2 for c in tc.values()))
    return {"bcubed_p": round(bp, 4), "bcubed_r": round(br, 4), "bcubed_f": round(2 * bp * br / (bp + br), 4),
            "pairwise_p": None if pp is None else round(pp, 4), "pairwise_r": round(pr, 4), "groups": len(pc)}  # fmt: skip


def main() -> None:
    from scipy.sparse.csgraph import connected_components

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--heads", nargs="+", default=["sface", "facenet-casia"])
    args = ap.parse_args()
    rows = []
    for head in args.heads:
        store = FaceStore.open(args.work / f"yunet-{head}")
        faces = store.faces(["embedding", "identity", "is_main"])
        v = vectors_of(faces, store.dim)
        main = np.array(faces["is_main"].to_pylist())
        truth = np.array([str(x) for x in faces["identity"].to_pylist()], dtype=object)[main]
        people = len(set(truth))
        rows.append({"head": head, "method": "every face alone", "faces": len(v), "people": people,
                     **scores(np.arange(main.sum()), truth), "seconds": 0.0})  # fmt: skip
        for fmr in (1e-3, 1e-4):
            t = same_person(head, "yunet", fmr).threshold
            t0 = time.perf_counter()
            g = knn_graph(v, t, k=20)
            graph_s = time.perf_counter() - t0
            _, comp = connected_components(g, directed=False)
            rows.append({"head": head, "method": f"connected components, FMR {fmr:g} threshold", "faces": len(v),
                         "people": people, **scores(comp[main], truth),
                         "seconds": round(time.perf_counter() - t0, 2)})  # fmt: skip
            t1 = time.perf_counter()
            lab = propagate(g)
            rows.append({"head": head, "method": f"label propagation, FMR {fmr:g} threshold"
                         + (" (`lookalike cluster`)" if fmr == 1e-4 else ""), "faces": len(v), "people": people,
                         **scores(lab[main], truth), "seconds": round(graph_s + time.perf_counter() - t1, 2)})  # fmt: skip
            print(rows[-1], flush=True)
    res = {"machine": machine(), "date": today(), "rows": rows}
    write_report(HERE, "cluster", res, render(res))


def render(res: dict) -> str:
    r0 = res["rows"][0]
    md = [
        "# People found without labels",
        "",
        f"{machine_line(res['machine'])}. Date: {res['date']}. Made by `benchmarks/cluster.py`.",
        "",
        f"LFW View 2's photos indexed with YuNet ({r0['faces']:,} faces), labels hidden; the groups of the "
        f"{r0['people']:,} people's main faces scored against the truth. Most LFW people have one or two photos "
        "here, so putting every face alone already scores well on BCubed: it is the floor to beat. BCubed F "
        "weighs each face alike; pairwise precision/recall count pairs of faces (a few large people dominate). "
        "Time: the 20-nearest-neighbour graph (exact search) plus the grouping, on this machine.",
        "",
        "| head | method | groups | BCubed P / R / F | pairwise P / R | time (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in res["rows"]:
        pp = "n/a" if r["pairwise_p"] is None else f"{r['pairwise_p']:.3f}"
        md.append(f"| `{r['head']}` | {r['method']} | {r['groups']:,} | {r['bcubed_p']:.3f} / {r['bcubed_r']:.3f} / "
                  f"**{r['bcubed_f']:.3f}** | {pp} / {r['pairwise_r']:.3f} | {r['seconds']} |")  # fmt: skip
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
