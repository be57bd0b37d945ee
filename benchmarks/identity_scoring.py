"""How `query --mode identities` should score a person from their faces: the best face, or the mean of the best
two or three, or the faces' centroid. Writes benchmarks/identity_scoring.md and .json.

    python benchmarks/identity_scoring.py [--work DIR] [--heads facenet-casia sface ...]

The look-alike test of index_query.py with every identity holding all its LFW photos (up to 10), not one: 1,000
random LFW people plus the 28 people of the 14 DoppelVer pairs LFW holds. Each main face of a pair's person A is a
query; the rank of B among all identities but A's is recorded (both directions). The query photo's own file is
never in the gallery's answer (its identity is left out). Rules are compared with "best face" by a paired
bootstrap over the 14 pairs (a pair's queries are not independent), 10,000 resamples.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from head_choice import paired_bootstrap, stats  # noqa: E402
from index_query import lfw_doppel_gallery  # noqa: E402

from lookalike.eval.report import machine, machine_line, today  # noqa: E402

RULES = ("best", "mean-2", "mean-3", "centroid")
PER_PERSON = 10


def gallery() -> tuple[list[str], dict[str, str], list[tuple[str, str]]]:
    """index_query.py's look-alike gallery, every identity with all its photos (up to 10)."""
    paths, labels, pairs = lfw_doppel_gallery(others_keep=PER_PERSON)
    return [os.path.abspath(p) for p in paths], labels, pairs


def scores(sims: np.ndarray, vecs: np.ndarray, q: np.ndarray, members: list[np.ndarray], rule: str) -> np.ndarray:
    """Each identity's score from its faces' cosines to the query `sims` (`members`: each identity's rows)."""
    if rule == "centroid":
        out = []
        for m in members:
            c = vecs[m].mean(0)
            out.append(float(c @ q / max(np.linalg.norm(c), 1e-12)))
        return np.asarray(out)
    n = 1 if rule == "best" else int(rule.split("-")[1])
    return np.asarray([np.sort(sims[m])[::-1][:n].mean() for m in members])


def ranks_by_rule(pv, labels: dict[str, str], pairs) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per rule, the target's rank for every query (in pair order), and each query's pair."""
    found = [p for p, f in zip(pv.paths, pv.found, strict=True) if f]
    vecs = pv.vectors[pv.rows(found)]
    who = np.array([labels[p] for p in found])
    people = sorted(set(who))
    members = [np.nonzero(who == w)[0] for w in people]
    index = {w: i for i, w in enumerate(people)}
    out: dict[str, list[int]] = {r: [] for r in RULES}
    groups = []
    for k, (a, b) in enumerate(pairs):
        for q_person, target in ((a, b), (b, a)):
            if target not in index or q_person not in index:
                continue
            for qi in members[index[q_person]]:
                sims = vecs @ vecs[qi]
                for rule in RULES:
                    sc = scores(sims, vecs, vecs[qi], members, rule)
                    sc[index[q_person]] = -np.inf  # the query's own identity is left out
                    out[rule].append(int((sc > sc[index[target]]).sum()) + 1)
                groups.append(k)
    return {r: np.asarray(v) for r, v in out.items()}, np.asarray(groups)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/identity-scoring"))
    ap.add_argument("--heads", nargs="+", default=["facenet-casia", "sface"])
    args = ap.parse_args()
    from lookalike.eval.embed import embed_photos

    paths, labels, pairs = gallery()
    results = {"date": today(), "machine": machine(), "photos": len(paths), "identities": len(set(labels.values())),
               "heads": {}}  # fmt: skip
    md = [
        "# Identity scoring: how a person's faces make one score",
        "",
        f"{machine_line(machine())}. Date: {today()}. Made by `benchmarks/identity_scoring.py` (the protocol: its "
        "docstring).",
        "",
        f"Gallery: {len(paths)} LFW photos of {results['identities']} identities (each with all its photos, up to "
        f"{PER_PERSON}); queries: every main face of the 28 people of the 14 DoppelVer pairs LFW holds, the other "
        "person of the pair to be found among all identities but the query's own. Differences from **best face**: "
        "95% intervals of a paired bootstrap over the 14 pairs; an interval that holds 0 is no evidence.",
        "",
    ]
    for head in args.heads:
        pv = embed_photos(paths, head, args.work / f"ix-{head}", labels)
        ranks, groups = ranks_by_rule(pv, labels, pairs)
        rows = {r: {**stats(v), "median_rank": float(np.median(v))} for r, v in ranks.items()}
        boot = {r: paired_bootstrap(ranks["best"], ranks[r], groups) for r in RULES if r != "best"}
        results["heads"][head] = {"queries": len(groups), "rules": rows, "vs_best": boot}
        md += [f"## {head} ({len(groups)} queries)", "",
               "| identity score | median rank | MRR | top-1 | top-10 | MRR - best [95% CI] | top-1 - best [95% CI] |",
               "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for r in RULES:
            s = rows[r]
            d = boot.get(r)
            extra = (f"{d['mrr']['diff']:+.3f} [{d['mrr']['lo']:+.3f}, {d['mrr']['hi']:+.3f}] | "
                     f"{100 * d['top1']['diff']:+.1f} [{100 * d['top1']['lo']:+.1f}, {100 * d['top1']['hi']:+.1f}] pt"
                     if d else " | ")  # fmt: skip
            md.append(f"| {r} | {s['median_rank']:.0f} | {s['mrr']:.3f} | {100 * s['top1']:.1f}% | "
                      f"{100 * s['top10']:.1f}% | {extra} |")  # fmt: skip
        md.append("")
        print("\n".join(md[-len(RULES) - 4 :]), flush=True)
    (HERE / "identity_scoring.json").write_text(json.dumps(results, indent=1) + "\n")
    (HERE / "identity_scoring.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
