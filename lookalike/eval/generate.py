"""Making protocols: the doppelganger protocol of seed 003, section 7.3.3 (DoppelVer: up to 500 image combinations
per doppelganger pair and per identity with itself, 10 identity-disjoint splits, 50% positive), from a labelled
gallery, with equal splits; written with `lookalike.eval.protocols.write_protocol`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lookalike.curate.protocol import PairProtocol, assign_identity_splits
from lookalike.errors import LookalikeError
from lookalike.eval.protocols import load_doppel_pair_list, relative_to, write_protocol
from lookalike.faces.scan import iter_photo_files


def _sample_cross(n_a: int, n_b: int, k: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to ``k`` distinct (i, j) with i < n_a, j < n_b, uniformly without replacement."""
    total = n_a * n_b
    idx = np.sort(rng.choice(total, size=min(k, total), replace=False))
    return [(int(x // n_b), int(x % n_b)) for x in idx]


def _sample_within(n: int, k: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to ``k`` distinct (i, j) with i < j < n, uniformly without replacement."""
    total = n * (n - 1) // 2
    if total == 0:
        return []
    idx = np.sort(rng.choice(total, size=min(k, total), replace=False))
    rows = np.arange(n - 1)
    starts = rows * (2 * n - rows - 1) // 2  # flat index of (i, i + 1) in row-major i < j order
    i = np.searchsorted(starts, idx, side="right") - 1
    j = idx - starts[i] + i + 1
    return [(int(x), int(y)) for x, y in zip(i, j, strict=True)]


def generate_doppelganger_protocol(
    gallery: Mapping[str, Sequence[str]],
    doppel_pairs: Sequence[tuple[str, str]],
    pairs_per_split: int,
    combos_per_pair: int = 500,
    n_splits: int = 10,
    seed: int = 0,
) -> PairProtocol:
    """Build a doppelganger protocol from a labelled gallery (seed 003, section 7.3.3).

    1. For every doppelganger pair (A, B) sample up to ``combos_per_pair`` image combinations (a of A,
       b of B) without replacement: the negatives. For every identity of the pair list with >= 2 images,
       sample up to ``combos_per_pair`` of its image 2-combinations: the positives.
    2. Split identity-disjointly with `assign_identity_splits` (a doppelganger pair's two people share a
       split, so every negative lies inside one split).
    3. Per split, sample ``pairs_per_split / 2`` positives and as many negatives. If a split holds fewer
       of either kind, both are cut to ``min(#positives, #negatives, pairs_per_split / 2)`` so each split
       (hence the protocol) stays exactly 50% positive; such a split is smaller, possibly empty.

    Pairs are ordered by split, then positives before negatives (as LFW orders a fold). Doppelganger pairs
    naming an identity absent from the gallery (or with no image), self-pairs and repeats are skipped.
    Deterministic for a given ``seed`` (galleries' image lists are used in the order given).

    Args:
        gallery: identity -> its image paths.
        doppel_pairs: doppelganger identity pairs (names as in ``gallery``).
        pairs_per_split: target pairs per split, even.
        combos_per_pair: most combinations sampled per doppelganger pair and per identity (500 in seed).
        n_splits: number of splits (10 in the seed).
        seed: random seed.
    """
    if pairs_per_split < 2 or pairs_per_split % 2:
        raise LookalikeError(f"pairs_per_split must be a positive even number, got {pairs_per_split}")
    if combos_per_pair < 1:
        raise LookalikeError(f"combos_per_pair must be at least 1, got {combos_per_pair}")
    rng = np.random.default_rng(seed)
    seen: set[tuple[str, str]] = set()
    pairs: list[tuple[str, str]] = []
    for x, y in doppel_pairs:
        key = (min(x, y), max(x, y))
        if x == y or key in seen or not gallery.get(x) or not gallery.get(y):
            continue
        seen.add(key)
        pairs.append((x, y))
    if not pairs:
        raise LookalikeError("no doppelganger pair has both of its identities in the gallery")
    people = sorted({p for pair in pairs for p in pair})
    splits = assign_identity_splits({p: len(gallery[p]) for p in people}, pairs, n_splits, seed)

    # candidate pair: (image a, image b, identity a, identity b)
    positives: list[list[tuple[str, str, str, str]]] = [[] for _ in range(n_splits)]
    negatives: list[list[tuple[str, str, str, str]]] = [[] for _ in range(n_splits)]
    for p in people:
        imgs = list(gallery[p])
        for i, j in _sample_within(len(imgs), combos_per_pair, rng):
            positives[splits[p]].append((imgs[i], imgs[j], p, p))
    for x, y in pairs:
        ia, ib = list(gallery[x]), list(gallery[y])
        for i, j in _sample_cross(len(ia), len(ib), combos_per_pair, rng):
            negatives[splits[x]].append((ia[i], ib[j], x, y))

    half = pairs_per_split // 2
    rows: list[tuple[str, str, str, str, bool, int]] = []
    for k in range(n_splits):
        take = min(half, len(positives[k]), len(negatives[k]))
        for pool, label in ((positives[k], True), (negatives[k], False)):
            chosen = np.sort(rng.choice(len(pool), size=take, replace=False)) if take else []
            rows.extend((*pool[int(c)], label, k) for c in chosen)
    if not rows:
        raise LookalikeError("no split holds both positive and negative pairs: the gallery is too small")
    return PairProtocol(
        a=[r[0] for r in rows],
        b=[r[1] for r in rows],
        same=np.array([r[4] for r in rows], dtype=bool),
        split=np.array([r[5] for r in rows], dtype=np.int64),
        name="doppelganger",
        identity_a=[r[2] for r in rows],
        identity_b=[r[3] for r in rows],
    )


def gallery_from_folder(root: Path, only: set[str] | None = None) -> dict[str, list[str]]:
    """identity (folder name under `root`) -> its photos' absolute paths, sorted; `only` limits identities."""
    root = Path(root)
    if not root.is_dir():
        raise LookalikeError(f"gallery {root} is not a folder of <identity>/<photo> files")
    out: dict[str, list[str]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if only is not None and d.name not in only:
            continue
        photos = sorted(os.path.abspath(p) for p in iter_photo_files(d))
        if photos:
            out[d.name] = photos
    return out


def equalize_splits(proto: PairProtocol, n_splits: int = 10, seed: int = 0) -> tuple[PairProtocol, int]:
    """Cut every split to the same size, half positive, so the published format (consecutive equal folds,
    no split column) reads back the same splits. Returns `(protocol, pairs dropped)`; pairs are ordered by
    split, positives first. Splits that would be empty make the whole protocol fail (no equal size > 0).
    """
    rng = np.random.default_rng(seed)
    counts = [
        min(int(((proto.split == k) & proto.same).sum()), int(((proto.split == k) & ~proto.same).sum()))
        for k in range(n_splits)
    ]
    half = min(counts)
    if half == 0:
        empty = [k for k, c in enumerate(counts) if c == 0]
        raise LookalikeError(
            f"splits {empty} hold no positive or no negative pair: the gallery is too small for {n_splits} splits"
        )
    order: list[int] = []
    for k in range(n_splits):
        for label in (True, False):
            idx = np.nonzero((proto.split == k) & (proto.same == label))[0]
            order.extend(np.sort(rng.choice(idx, size=half, replace=False)).tolist())
    return proto.take(np.array(order, dtype=np.int64)), len(proto) - len(order)


def make_doppelganger(
    gallery: Path,
    pairs_csv: Path,
    out: Path,
    pairs_per_split: int,
    n_splits: int = 10,
    seed: int = 0,
    equal_splits: bool = True,
) -> dict:
    """Generate the doppelganger protocol from `gallery/<identity>/*` and a pair list; write it to `out`.

    Paths in the file are relative to `gallery` (evaluate with `--images GALLERY`). With `equal_splits`
    every split is cut to the smallest one so the file's consecutive folds are the splits (the published
    format); without, all pairs are kept and the splits go to the `.splits` sidecar (`write_protocol`).
    Returns a summary with the pairs of each split.
    """
    pairs = load_doppel_pair_list(pairs_csv)
    people = {p for pair in pairs for p in pair}
    found = gallery_from_folder(gallery, people)
    proto = generate_doppelganger_protocol(found, pairs, pairs_per_split, n_splits=n_splits, seed=seed)
    dropped = 0
    if equal_splits:
        proto, dropped = equalize_splits(proto, n_splits, seed)
    proto = relative_to(proto, gallery)
    write_protocol(proto, out)
    return {
        **proto.summary(),
        "file": str(out),
        "pairs_per_split": np.bincount(proto.split, minlength=n_splits).tolist(),
        "dropped_to_equalize": dropped,
        "doppelganger_pairs_listed": len(pairs),
        "doppelganger_pairs_used": len(
            {tuple(sorted(x)) for x in zip(proto.identity_a, proto.identity_b) if x[0] != x[1]}
        ),
        "identities_missing_from_gallery": sorted(people - set(found)),
    }
