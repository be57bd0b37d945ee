"""Retrieval checks over an index's stored vectors: leave-one-out top-1 and planted-look-alike ranks."""

from __future__ import annotations

import numpy as np

from lookalike.index.store import vectors_of
from lookalike.search.query import Searcher


def leave_one_out(searcher: Searcher, k: int = 1) -> dict:
    """Query every labelled main face against all the other photos (faces mode, its own file left out).

    Counts a hit when the top match has the query's identity. Only identities with 2+ photos are queried,
    so every query has at least one right answer. Returns `{"queries", "top1", "top5", "per_identity"}`.
    """
    faces = searcher.store.faces(["vector_id", "sha256", "identity", "is_main", "embedding"])
    ident = np.asarray(faces["identity"].to_pylist(), dtype=object)
    main = faces["is_main"].to_numpy(zero_copy_only=False)
    labelled = main & (ident != None)  # noqa: E711 - elementwise over an object array
    names, counts = np.unique(ident[labelled].astype(str), return_counts=True)
    multi = set(names[counts >= 2])
    rows = np.nonzero(labelled & np.isin(ident.astype(str), list(multi)))[0]
    vecs = vectors_of(faces, searcher.store.dim)[rows]
    shas = faces["sha256"].to_pylist()
    answers = searcher.search_vectors(vecs, k=max(k, 5), mode="faces", exclude_sha=[shas[r] for r in rows])
    top1 = top5 = 0
    per: dict[str, list[int]] = {}
    for r, ans in zip(rows, answers):
        want = ident[r]
        hit1 = bool(ans) and ans[0].identity == want
        hit5 = any(m.identity == want for m in ans[:5])
        top1 += hit1
        top5 += hit5
        per.setdefault(str(want), []).append(int(hit1))
    n = len(rows)
    return {
        "queries": n,
        "identities": len(multi),
        "top1": top1 / n if n else float("nan"),
        "top5": top5 / n if n else float("nan"),
        "per_identity": {name: sum(v) / len(v) for name, v in sorted(per.items())},
    }
