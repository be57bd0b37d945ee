"""ViSE hard-pair mining (seed 003, 7.3.3): every pair of photos of *different* identities whose embeddings
have cosine > threshold, image by image, found by range search (`pairs.similar_pairs`, never N x N),
balanced with as many same-identity pairs, in identity-disjoint splits, written in the published format.

Splits: identities named by a doppelganger protocol keep its split (`pinned`), so split k of both
protocols holds the same people; the other identities are placed by `assign_identity_splits`, with the
identities of strong mined pairs kept together (up to a size cap, so the links cannot chain the whole
gallery into one split) and weighted by how many mined pairs they take part in, so every split gets its
share of hard pairs. A mined pair whose two identities still land in different splits is dropped (counted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lookalike.config import VISE_COSINE
from lookalike.curate.pairs import group_codes, similar_pairs
from lookalike.curate.protocol import PairProtocol, assign_identity_splits


@dataclass
class MiningStats:
    """What a mining run found and kept (all counts of pairs unless named otherwise)."""

    photos: int = 0
    identities: int = 0
    threshold: float = 0.0
    mined_negatives: int = 0
    cross_split_dropped: int = 0
    negatives_in_splits: list[int] = field(default_factory=list)
    positives_available: list[int] = field(default_factory=list)
    pairs_per_split: list[int] = field(default_factory=list)
    pairs: int = 0
    score_quantiles: dict[str, float] = field(default_factory=dict)


def _tri_pair(n: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat index into the row-major list of pairs `i < j` of an n-set -> `(i, j)`, elementwise over `n`."""
    n = np.asarray(n, np.int64)
    flat = np.asarray(flat, np.int64)

    def start(i: np.ndarray) -> np.ndarray:  # pairs before row i
        return i * (2 * n - i - 1) // 2

    b = 2.0 * n - 1
    i = np.floor((b - np.sqrt(np.maximum(b * b - 8.0 * flat, 0.0))) / 2).astype(np.int64)
    i = np.clip(i, 0, np.maximum(n - 2, 0))
    for _ in range(2):  # float rounding is at most one row off
        i = np.where(start(i) > flat, i - 1, i)
        i = np.where((i + 1 <= n - 2) & (start(i + 1) <= flat), i + 1, i)
    return i, flat - start(i) + i + 1


def _capped_groups(
    ia: np.ndarray, ib: np.ndarray, score: np.ndarray, weight: np.ndarray, cap: float, pinned: dict[int, int]
) -> list[list[int]]:
    """Union identity codes linked by mined pairs (strongest first) while a component stays <= `cap` images
    and holds at most one pinned split. Returns the components with more than one member."""
    parent = np.arange(len(weight))
    size = weight.astype(np.float64).copy()
    pin = dict(pinned)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for k in np.argsort(-score, kind="stable"):
        ra, rb = find(int(ia[k])), find(int(ib[k]))
        if ra == rb or size[ra] + size[rb] > cap:
            continue
        pa, pb = pin.get(ra), pin.get(rb)
        if pa is not None and pb is not None and pa != pb:
            continue
        parent[rb] = ra
        size[ra] += size[rb]
        if pb is not None:
            pin[ra] = pb
    comps: dict[int, list[int]] = {}
    for x in range(len(weight)):
        comps.setdefault(find(x), []).append(x)
    return [c for c in comps.values() if len(c) > 1]


def mine_vise(
    paths: list[str],
    identities: list[str | None],
    vectors: np.ndarray,
    threshold: float = VISE_COSINE,
    pinned: dict[str, int] | None = None,
    n_splits: int = 10,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    equal_splits: bool = True,
    group_share: float = 1.0,
) -> tuple[PairProtocol, MiningStats, dict]:
    """Mine a ViSE protocol.

    Args:
        paths: `N` photo paths (one main face each).
        identities: `N` labels; unlabelled photos (None) are left out.
        vectors: `(N, d) float32`, L2-normalised main-face embeddings.
        threshold: keep different-identity pairs with cosine > threshold (`config.VISE_COSINE`: the seed's 0.80,
            with DINOv2).
        pinned: identity -> split from a doppelganger protocol (those identities keep their split).
        n_splits: number of splits.
        seed: seeds the positive sampling and split placement.
        progress: called with query rows done (range search).
        equal_splits: every split gets the same number of pairs (the smallest split's), as the published
            format needs; else each split keeps min(its negatives, its positives) of each.
        group_share: identities linked by mined pairs are kept in one split while their photos stay within
            this fraction of a split's fair share (N / n_splits); larger keeps more pairs, smaller balances better.

    Returns:
        `(protocol, stats, negatives)`: the protocol has `n_splits` equal splits (half positive, positives
        first within a split, ordered by split); `negatives` holds every mined pair as arrays
        `{"a", "b", "score", "split_a", "split_b"}` (row indices into `paths`) for the Parquet record.
    """
    rng = np.random.default_rng(seed)
    keep = np.array([x is not None for x in identities], bool)
    rows = np.nonzero(keep)[0]
    codes, names = group_codes([identities[r] for r in rows])
    x = np.asarray(vectors, np.float32)[rows]
    stats = MiningStats(photos=len(rows), identities=len(names), threshold=float(threshold))
    i, j, s = similar_pairs(x, threshold, codes, "different", progress=progress)
    stats.mined_negatives = len(s)
    if len(s):
        qs = np.quantile(s, [0, 0.5, 0.9, 1])
        stats.score_quantiles = {k: round(float(v), 4) for k, v in zip(("min", "median", "p90", "max"), qs)}

    # --- splits: pinned identities keep theirs; the rest placed with mined links and mined-pair weights
    n_img = np.bincount(codes, minlength=len(names))
    touched = (
        np.bincount(np.concatenate([codes[i], codes[j]]), minlength=len(names)) if len(s) else np.zeros_like(n_img)
    )
    pin_code = {k: int(pinned[n]) for k, n in enumerate(names) if pinned and n in pinned}
    cap = max(n_img.sum() / n_splits * group_share, float(n_img.max()))
    comps = _capped_groups(codes[i], codes[j], s, n_img, cap, pin_code)
    split = np.full(len(names), -1, np.int64)
    for c in comps:
        ps = {pin_code[m] for m in c if m in pin_code}
        if ps:
            split[c] = ps.pop()
    for m, k in pin_code.items():
        split[m] = k
    free = np.nonzero(split < 0)[0]
    weight = {names[m]: int(n_img[m] + 1000 * touched[m]) for m in free}
    groups = [[names[m] for m in c if split[m] < 0] for c in comps]
    placed = assign_identity_splits(weight, groups, n_splits, seed)
    for m in free:
        split[m] = placed[names[m]]

    sa, sb = split[codes[i]], split[codes[j]]
    same_split = sa == sb
    stats.cross_split_dropped = int((~same_split).sum())
    ni, nj, nsplit = i[same_split], j[same_split], sa[same_split]

    # --- positives available per split: all same-identity 2-combinations of its identities
    combos = n_img * (n_img - 1) // 2
    pos_avail = [int(combos[split == k].sum()) for k in range(n_splits)]
    neg_count = [int((nsplit == k).sum()) for k in range(n_splits)]
    stats.negatives_in_splits, stats.positives_available = neg_count, pos_avail
    halves = [min(a, b) for a, b in zip(neg_count, pos_avail)]
    if equal_splits:
        halves = [min(halves)] * n_splits
    stats.pairs_per_split = [2 * h for h in halves]
    order = np.argsort(codes, kind="stable")
    first = np.concatenate([[0], np.cumsum(n_img)])
    out_a: list[int] = []
    out_b: list[int] = []
    out_same: list[bool] = []
    out_split: list[int] = []
    for k in range(n_splits):
        half = halves[k]
        if half == 0:
            continue
        ids_k = np.nonzero((split == k) & (combos > 0))[0]
        offs = np.concatenate([[0], np.cumsum(combos[ids_k])])
        flat = np.sort(rng.choice(offs[-1], size=half, replace=False))
        which = np.searchsorted(offs, flat, side="right") - 1
        ident = ids_k[which]
        pi, pj = _tri_pair(n_img[ident], flat - offs[which])
        out_a += order[first[ident] + pi].tolist()
        out_b += order[first[ident] + pj].tolist()
        out_same += [True] * half
        negs = np.nonzero(nsplit == k)[0]
        pick = np.sort(rng.choice(negs, size=half, replace=False))
        out_a += ni[pick].tolist()
        out_b += nj[pick].tolist()
        out_same += [False] * half
        out_split += [k] * (2 * half)
    stats.pairs = len(out_a)
    lab = [identities[r] for r in rows]
    proto = PairProtocol(
        a=[paths[rows[t]] for t in out_a],
        b=[paths[rows[t]] for t in out_b],
        same=np.array(out_same, bool),
        split=np.array(out_split, np.int64),
        name="vise",
        identity_a=[lab[t] for t in out_a],
        identity_b=[lab[t] for t in out_b],
    )
    negatives = {"a": rows[i], "b": rows[j], "score": s, "split_a": sa, "split_b": sb}
    return proto, stats, negatives
