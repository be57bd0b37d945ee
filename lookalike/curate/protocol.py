"""A pair protocol (image pairs, each same/different person, in identity-disjoint splits) and how identities are
placed in splits. The data type of every verification benchmark and of ViSE mining; the loaders and writers of
protocol files are in `lookalike.eval.protocols`, the generators in `lookalike.eval.generate`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass
class PairProtocol:
    """Verification pairs.

    Attributes:
        a, b: image paths of each pair, ``n`` strings each (joined to an images root when one was given).
        same: bool array ``(n,)``, True for a same-person pair.
        split: int array ``(n,)``, the split / fold of each pair (0-based).
        name: a label for reports (``"lfw"``, ``"vise"``, ``"doppelganger"``...).
        identity_a, identity_b: the identity of each side, ``n`` strings each (LFW underscore form).
        source_a, source_b: the paths as written in the protocol file (relative, unrooted); what
            `write_doppelver_pairs` writes back. Default: ``a`` and ``b``.
    """

    a: list[str]
    b: list[str]
    same: np.ndarray
    split: np.ndarray
    name: str
    identity_a: list[str]
    identity_b: list[str]
    source_a: list[str] | None = None
    source_b: list[str] | None = None

    def __post_init__(self) -> None:
        self.same = np.asarray(self.same, dtype=bool)
        self.split = np.asarray(self.split, dtype=np.int64)
        if self.source_a is None:
            self.source_a = list(self.a)
        if self.source_b is None:
            self.source_b = list(self.b)
        n = len(self.a)
        lengths = {
            len(self.b),
            len(self.identity_a),
            len(self.identity_b),
            len(self.source_a),
            len(self.source_b),
            self.same.size,
            self.split.size,
        }
        if lengths != {n} or self.same.ndim != 1 or self.split.ndim != 1:
            raise ValueError("PairProtocol fields must all hold one entry per pair")

    def take(self, idx) -> PairProtocol:
        """The pairs at positions `idx` (in that order), as a protocol of the same name."""
        idx = np.asarray(idx, dtype=np.int64)
        pick = idx.tolist()
        return PairProtocol(
            a=[self.a[i] for i in pick],
            b=[self.b[i] for i in pick],
            same=self.same[idx],
            split=self.split[idx],
            name=self.name,
            identity_a=[self.identity_a[i] for i in pick],
            identity_b=[self.identity_b[i] for i in pick],
            source_a=[self.source_a[i] for i in pick],
            source_b=[self.source_b[i] for i in pick],
        )

    def __len__(self) -> int:
        return len(self.a)

    def identities(self) -> list[str]:
        """Sorted unique identities appearing on either side of any pair."""
        return sorted(set(self.identity_a) | set(self.identity_b))

    def summary(self) -> dict[str, int]:
        """``{"pairs", "folds", "positives", "identities"}``: counts for reports."""
        return {
            "pairs": len(self),
            "folds": int(np.unique(self.split).size),
            "positives": int(self.same.sum()),
            "identities": len(self.identities()),
        }


def assign_identity_splits(
    identities: Mapping[str, int],
    groups: Iterable[Iterable[str]],
    n_splits: int = 10,
    seed: int = 0,
) -> dict[str, int]:
    """Place identities into ``n_splits`` identity-disjoint splits, keeping linked identities together.

    Args:
        identities: identity -> image count (its weight when balancing).
        groups: collections of identities that must share a split, e.g. the doppelganger pairs; linked
            identities form connected components (union-find) and a component is placed whole. Names not
            in ``identities`` are ignored.
        n_splits: number of splits.
        seed: orders components of equal weight (a seeded shuffle before a stable sort), so the result is
            deterministic for a given seed.

    Returns:
        identity -> split in ``0..n_splits-1``. Components go largest (by total image count) first into
        the currently lightest split (lowest split index on ties).
    """
    if n_splits < 1:
        raise ValueError(f"n_splits must be at least 1, got {n_splits}")
    parent = {name: name for name in identities}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for group in groups:
        members = [m for m in group if m in parent]
        for m in members[1:]:
            ra, rb = find(members[0]), find(m)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    components: dict[str, list[str]] = {}
    for name in sorted(identities):
        components.setdefault(find(name), []).append(name)
    comps = [components[root] for root in sorted(components)]
    rng = np.random.default_rng(seed)
    comps = [comps[i] for i in rng.permutation(len(comps))]
    comps.sort(key=lambda c: -sum(int(identities[m]) for m in c))  # stable: seeded order on ties
    load = [0] * n_splits
    out: dict[str, int] = {}
    for comp in comps:
        k = min(range(n_splits), key=lambda j: (load[j], j))
        load[k] += sum(int(identities[m]) for m in comp)
        for m in comp:
            out[m] = k
    return out
