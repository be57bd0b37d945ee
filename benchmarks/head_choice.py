"""Which head ranks real doppelgangers highest: per-query ranks of the DoppelVer doppelganger test of
`index_query.py` (its indexes, in its --work folder), each head against the default, paired by query.

The 106 queries come from 14 pairs of people, so a difference in MRR or top-10 between heads is shown with a 95%
interval from a paired bootstrap that resamples the 14 *pairs* (a pair's queries are not independent of each
other): an interval that holds 0 is no evidence either way. Writes benchmarks/head_choice.md and .json.

Usage: python benchmarks/head_choice.py --work /tmp/iq --heads facenet-casia sface dlib fused:...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from index_query import doppel_ranks, lfw_doppel_gallery  # noqa: E402

from lookalike.eval.report import machine, machine_line, today  # noqa: E402
from lookalike.heads import DEFAULT_HEAD  # noqa: E402


def pair_of_query(ix: Path, pairs: list[tuple[str, str]]) -> list[int]:
    """The pair each query of `doppel_ranks` belongs to, in its order (the same loop, counting instead)."""
    from lookalike.search.query import Searcher

    faces = Searcher(ix, load_head=False).store.faces(["identity", "is_main"])
    ident, main = faces["identity"].to_pylist(), faces["is_main"].to_pylist()
    present = {w for w, m in zip(ident, main, strict=True) if m and w is not None}
    out = []
    for k, (a, b) in enumerate(pairs):
        for q, t in ((a, b), (b, a)):
            if t in present:
                out += [k] * sum(1 for w, m in zip(ident, main, strict=True) if w == q and m)
    return out


def stats(ranks: np.ndarray) -> dict:
    return {"mrr": float((1 / ranks).mean()), "top1": float((ranks <= 1).mean()), "top10": float((ranks <= 10).mean())}


def paired_bootstrap(base: np.ndarray, other: np.ndarray, groups: np.ndarray, n: int = 10000, seed: int = 0) -> dict:
    """95% intervals of other - base (MRR, top-1, top-10), resampling whole groups (pairs) with replacement."""
    rng = np.random.default_rng(seed)
    ids = np.unique(groups)
    members = [np.nonzero(groups == g)[0] for g in ids]
    diffs = {k: [] for k in ("mrr", "top1", "top10")}
    for _ in range(n):
        rows = np.concatenate([members[i] for i in rng.integers(0, len(ids), len(ids))])
        a, b = stats(base[rows]), stats(other[rows])
        for k in diffs:
            diffs[k].append(b[k] - a[k])
    point_a, point_b = stats(base), stats(other)
    return {
        k: {"diff": point_b[k] - point_a[k], "lo": float(np.percentile(v, 2.5)), "hi": float(np.percentile(v, 97.5))}
        for k, v in diffs.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="index_query.py's --work folder")
    ap.add_argument("--heads", nargs="+", required=True)
    ap.add_argument("--base", default=DEFAULT_HEAD)
    args = ap.parse_args()
    _, _, pairs = lfw_doppel_gallery()
    ranks, groups = {}, None
    for h in dict.fromkeys([args.base, *args.heads]):
        ix = args.work / f"lfw-sample-{h}"
        ranks[h] = np.asarray(doppel_ranks(ix, pairs)["ranks"])
        g = np.asarray(pair_of_query(ix, pairs))
        assert len(g) == len(ranks[h]) and (groups is None or np.array_equal(g, groups)), h
        groups = g
    rows = []
    for h in args.heads:
        if h == args.base:
            continue
        rows.append({"head": h, **stats(ranks[h]), "vs_base": paired_bootstrap(ranks[args.base], ranks[h], groups)})
    when = today()
    out = {"date": when, "machine": machine(), "base": args.base, "base_stats": stats(ranks[args.base]),
           "queries": len(groups), "pairs": len(np.unique(groups)), "rows": rows}  # fmt: skip
    (HERE / "head_choice.json").write_text(json.dumps(out, indent=1) + "\n")
    md = [
        "# Which head ranks doppelgangers highest (paired by query)",
        "",
        f"{machine_line(machine())}. Date: {when}. Made by `benchmarks/head_choice.py` from the indexes of "
        "`benchmarks/index_query.py` (DoppelVer doppelgangers among 1,027 LFW identities, detector yunet).",
        "",
        f"{len(groups)} queries from {len(np.unique(groups))} pairs of people. Each head's difference from "
        f"`{args.base}` with a 95% interval from a paired bootstrap over the pairs (10,000 resamples): an "
        "interval that holds 0 is no evidence either way.",
        "",
        "| head | MRR | top-1 | top-10 | MRR - base [95% CI] | top-1 - base [95% CI] | top-10 - base [95% CI] |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    b = out["base_stats"]
    md.append(f"| `{args.base}` (base) | {b['mrr']:.3f} | {100 * b['top1']:.1f}% | {100 * b['top10']:.1f}% | | | |")
    for r in rows:
        d = r["vs_base"]
        cells = [f"{d['mrr']['diff']:+.3f} [{d['mrr']['lo']:+.3f}, {d['mrr']['hi']:+.3f}]"] + [
            f"{100 * d[k]['diff']:+.1f} [{100 * d[k]['lo']:+.1f}, {100 * d[k]['hi']:+.1f}] pt"
            for k in ("top1", "top10")
        ]
        md.append(
            f"| `{r['head']}` | {r['mrr']:.3f} | {100 * r['top1']:.1f}% | {100 * r['top10']:.1f}% | "
            + " | ".join(cells)
            + " |"
        )
    (HERE / "head_choice.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
