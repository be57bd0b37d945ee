"""Similarity metrics of seeds 001, 002 and 004: triplet accuracy, top-ranked precision, NDCG@6, retrieval top-k.

Distances are any "smaller = more alike" numbers (Euclidean, 1 - cosine); every function is pure numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lookalike.similarity.triplets import triplet_accuracy

__all__ = ["ndcg", "retrieval_table", "retrieval_topk", "top_ranked_precision", "triplet_accuracy"]


def top_ranked_precision(model_rank_of_best: Any, k_max: int = 6) -> dict[int, float]:
    """Seed 001, Table 3: probability that the human top-ranked face lands in the model's top k, k = 1..k_max.

    model_rank_of_best: per query, the 1-based position the model gives the face people ranked first.
    """
    r = np.asarray(model_rank_of_best, np.int64)
    if r.ndim != 1 or len(r) == 0 or (r < 1).any():
        raise ValueError("ranks must be a non-empty 1-d array of positions >= 1")
    return {k: float((r <= k).mean()) for k in range(1, k_max + 1)}


def ndcg(avg_positions_in_model_order: Any, n: int = 6) -> float:
    """Seed 001 eq. 2: NDCG_n = DCG / ODCG with rel_i = n - (average human position of the i-th item, 0-based).

    avg_positions_in_model_order: the people's average position (0 = most alike .. n-1) of each of the n
    faces, listed in the order the model ranks them. ODCG orders the same items by their average position.
    """
    pos = np.asarray(avg_positions_in_model_order, np.float64)[:n]
    rel = n - pos
    disc = np.log2(np.arange(2, len(rel) + 2))
    dcg = float(((2.0**rel - 1) / disc).sum())
    ideal = np.sort(rel)[::-1]
    odcg = float(((2.0**ideal - 1) / disc).sum())
    return dcg / odcg if odcg > 0 else 0.0


def retrieval_topk(
    anchors: np.ndarray,
    references: np.ndarray,
    m: int,
    ks: tuple[int, ...] = (1, 2, 5),
    trials: int = 1,
    seed: int = 0,
    distractors: np.ndarray | None = None,
) -> dict[int, float]:
    """Seed 002, Table 1: rank each anchor's true match among m candidates (it + m - 1 distractors).

    anchors, references: `(P, d)` L2-normalised; row i of references is anchor i's look-alike.
    distractors: `(D, d)` L2-normalised rows of other people, or None. For each anchor (and trial) m - 1
    distractors are drawn without replacement from `distractors` when given (D >= m - 1, any P >= 1), else
    from the other references (P >= m). Distance is Euclidean. Returns top-k accuracy per k.
    """
    a, r = np.asarray(anchors, np.float64), np.asarray(references, np.float64)
    p = len(a)
    if r.shape != a.shape or p == 0:
        raise ValueError(f"need anchor/reference pairs of one shape, got {a.shape}, {r.shape}")
    if distractors is None:
        if p < m:
            raise ValueError(f"need {m} or more anchor/reference pairs, got {p}")
        pool = r
    else:
        pool = np.asarray(distractors, np.float64)
        if pool.ndim != 2 or pool.shape[1] != a.shape[1] or len(pool) < m - 1:
            raise ValueError(f"need {m - 1} or more distractors of width {a.shape[1]}, got {pool.shape}")
    rng = np.random.default_rng(seed)
    hits = {k: 0 for k in ks}
    total = 0
    for _ in range(trials):
        for i in range(p):
            idx = np.delete(np.arange(p), i) if distractors is None else np.arange(len(pool))
            others = pool[rng.choice(idx, size=m - 1, replace=False)]
            d = np.linalg.norm(np.concatenate([r[i : i + 1], others]) - a[i], axis=1)
            rank = int((d < d[0]).sum())  # ties count in the anchor's favour
            for k in ks:
                hits[k] += rank < k
            total += 1
    return {k: hits[k] / total for k in ks}


def retrieval_table(
    anchors: np.ndarray,
    references: np.ndarray,
    ms: tuple[int, ...] = (10, 20, 60),
    distractors: np.ndarray | None = None,
    **kw,
) -> dict:
    """`retrieval_topk` for each reference-set size m the data allow (m - 1 <= distractor pool): `{m: {k: acc}}`.

    The pool is `distractors` when given, else the other references (P - 1).
    """
    pool = len(anchors) - 1 if distractors is None else len(distractors)
    return {m: retrieval_topk(anchors, references, m, distractors=distractors, **kw) for m in ms if m - 1 <= pool}
