"""All pairs above a cosine threshold, by FAISS range search in query batches (never an N x N matrix).

The one similarity-graph core: ViSE mining (pairs of *different* identities above `config.VISE_COSINE`) and
de-duplication (pairs above `config.DEDUP_COSINE`, exact copies at 0.9999) both call `similar_pairs`.
Memory: the index holds the `(N, d)` vectors once; each batch of `batch` queries returns only its hits, so
peak memory is `O(N d + hits)`, not `O(N^2)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

Mask = Literal["all", "different", "same"]


def similar_pairs(
    vectors: np.ndarray,
    threshold: float,
    groups: np.ndarray | None = None,
    mask: Mask = "all",
    batch: int = 2048,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair `i < j` with `cosine(v_i, v_j) > threshold`.

    Args:
        vectors: `(N, d)` float32, rows L2-normalised (inner product = cosine).
        threshold: strict lower bound on the cosine.
        groups: `(N,)` int labels (e.g. identity codes); required when `mask` is not "all". A negative
            label means "unknown": such rows pair with nothing under "same" or "different".
        mask: "all" pairs, only pairs of "different" groups, or only pairs of the "same" group.
        batch: queries per range search (bounds the transient result size).
        progress: called with the number of query rows done after each batch.

    Returns:
        `(i, j, score)`: `(P,) int64`, `(P,) int64`, `(P,) float32`, `i < j`, sorted by `(i, j)`.
    """
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors must be (N, d), got shape {x.shape}")
    n, d = x.shape
    if mask != "all":
        if groups is None:
            raise ValueError(f"mask {mask!r} needs groups")
        g = np.asarray(groups, dtype=np.int64)
        if g.shape != (n,):
            raise ValueError(f"groups must be ({n},), got {g.shape}")
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if n < 2:
        return empty
    index = faiss.IndexFlatIP(d)
    index.add(x)
    out_i, out_j, out_s = [], [], []
    for start in range(0, n, batch):
        q = x[start : start + batch]
        lims, dist, ids = index.range_search(q, float(threshold))
        rows = np.repeat(np.arange(start, start + len(q), dtype=np.int64), np.diff(lims.astype(np.int64)))
        ids = ids.astype(np.int64, copy=False)
        keep = (ids > rows) & (dist > threshold)
        if mask == "different":
            keep &= (g[rows] != g[ids]) & (g[rows] >= 0) & (g[ids] >= 0)
        elif mask == "same":
            keep &= (g[rows] == g[ids]) & (g[rows] >= 0)
        out_i.append(rows[keep])
        out_j.append(ids[keep])
        out_s.append(dist[keep].astype(np.float32, copy=False))
        if progress is not None:
            progress(len(q))
    i, j, s = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s)
    order = np.lexsort((j, i))
    return i[order], j[order], s[order]


def group_codes(labels: list[str | None]) -> tuple[np.ndarray, list[str]]:
    """String labels -> `(N,) int64` codes (-1 for None) and the sorted distinct names."""
    names = sorted({x for x in labels if x is not None})
    code = {name: k for k, name in enumerate(names)}
    return np.array([code[x] if x is not None else -1 for x in labels], dtype=np.int64), names
