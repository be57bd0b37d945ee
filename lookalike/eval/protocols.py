"""Pair protocols for verification benchmarks: LFW View 2, the published DoppelVer files, and a generator.

A protocol is a list of image pairs, each labelled same/different and placed in a split (fold) 0..k-1.
The generator follows seed 003, section 7.3.3 (the DoppelVer doppelganger protocol): up to 500 image
combinations per doppelganger pair and per identity with itself, 10 identity-disjoint splits, 50% positive.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.atomic import atomic_write_text
from lookalike.errors import LookalikeError

__all__ = [
    "PairProtocol",
    "assign_identity_splits",
    "generate_doppelganger_protocol",
    "load_doppel_pair_list",
    "load_doppelver_pairs",
    "load_lfw_pairs",
    "write_doppelver_pairs",
]


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


def _rooted(rel: str, images_root: Path | None) -> str:
    return rel if images_root is None else str(Path(images_root) / rel)


# --------------------------------------------------------------------------------------------- LFW


def _lfw_image(name: str, number: str, lineno: int) -> str:
    if not number.isdigit() or int(number) < 1:
        raise LookalikeError(f"LFW pairs line {lineno}: bad image number {number!r}")
    return f"{name}/{name}_{int(number):04d}.jpg"


def load_lfw_pairs(pairs_txt: Path, images_root: Path | None = None) -> PairProtocol:
    """Read LFW's View 2 ``pairs.txt``.

    Format: a first line ``<folds> <per_fold>`` (``10 300``), then per fold ``per_fold`` same-person lines
    ``name n1 n2`` followed by ``per_fold`` different-person lines ``name1 n1 name2 n2`` (tab or space
    separated). Image paths are ``<Name>/<Name>_<NNNN>.jpg``, joined to ``images_root`` when given; the
    fold index (0-based) becomes the split.
    """
    pairs_txt = Path(pairs_txt)
    try:
        lines = pairs_txt.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LookalikeError(f"cannot read LFW pairs file {pairs_txt}: {exc.strerror or exc}") from exc
    if not lines:
        raise LookalikeError(f"LFW pairs file {pairs_txt} is empty")
    head = lines[0].split()
    if len(head) != 2 or not all(h.isdigit() for h in head):
        raise LookalikeError(f"LFW pairs line 1: expected '<folds> <pairs per fold>', got {lines[0]!r}")
    n_folds, per_fold = int(head[0]), int(head[1])
    body = [(i + 2, ln) for i, ln in enumerate(lines[1:]) if ln.strip()]
    if len(body) != 2 * n_folds * per_fold:
        raise LookalikeError(
            f"LFW pairs file {pairs_txt}: header promises {2 * n_folds * per_fold} pairs, found {len(body)}"
        )
    rel_a: list[str] = []
    rel_b: list[str] = []
    ida: list[str] = []
    idb: list[str] = []
    same: list[bool] = []
    split: list[int] = []
    for k, (lineno, line) in enumerate(body):
        fold, within = divmod(k, 2 * per_fold)
        want_same = within < per_fold
        f = line.split()
        if want_same and len(f) == 3:
            n1, n2 = f[0], f[0]
            p1, p2 = _lfw_image(f[0], f[1], lineno), _lfw_image(f[0], f[2], lineno)
        elif not want_same and len(f) == 4:
            n1, n2 = f[0], f[2]
            p1, p2 = _lfw_image(f[0], f[1], lineno), _lfw_image(f[2], f[3], lineno)
        else:
            kind = "same-person 'name n1 n2'" if want_same else "different-person 'name1 n1 name2 n2'"
            raise LookalikeError(f"LFW pairs line {lineno}: expected a {kind} line, got {line.strip()!r}")
        rel_a.append(p1)
        rel_b.append(p2)
        ida.append(n1)
        idb.append(n2)
        same.append(want_same)
        split.append(fold)
    return PairProtocol(
        a=[_rooted(p, images_root) for p in rel_a],
        b=[_rooted(p, images_root) for p in rel_b],
        same=np.array(same, dtype=bool),
        split=np.array(split, dtype=np.int64),
        name="lfw",
        identity_a=ida,
        identity_b=idb,
        source_a=rel_a,
        source_b=rel_b,
    )


# ---------------------------------------------------------------------------------------- DoppelVer


def _split_paths(rest: str) -> tuple[str, str] | None:
    """Split ``'pathA pathB'`` where paths may hold spaces.

    The published files give both paths under one top folder (``DoppelVer_All_112x112/...``), so pathB
    starts at the only occurrence of ``' <top>/'``; ``<top>`` is read from pathA itself. Paths without a
    space (e.g. written from another gallery) fall back to a plain two-field split.
    """
    top, sep, _ = rest.partition("/")
    if sep and top and " " not in top:
        marker = f" {top}/"
        first = rest.find(marker)
        if first > 0 and rest.find(marker, first + 1) == -1:
            pa, pb = rest[:first], rest[first + 1 :]
            if pa.strip() == pa and pb.strip() == pb:
                return pa, pb
    fields = rest.split(" ")
    if len(fields) == 2 and all(fields):
        return fields[0], fields[1]
    return None


def _doppelver_identity(path: str) -> str:
    """The identity of a protocol path.

    Published form ``<top>/<Identity> <file>.jpg`` (the identity folder and file joined by a space):
    the text between the top folder and the first space. Otherwise (``.../<Identity>/<file>.jpg``): the
    parent folder's name.
    """
    parent, _, base = path.rpartition("/")
    if " " in base:
        return base.split(" ", 1)[0]
    return parent.rpartition("/")[2]


def load_doppelver_pairs(path: Path, images_root: Path | None = None, folds: int = 10) -> PairProtocol:
    """Read a DoppelVer protocol file as published (doppelganger or ViSE).

    Each line is ``label pathA pathB`` with label 0 (different) or 1 (same), and paths that may contain
    spaces, e.g. ``1 DoppelVer_All_112x112/Elle_Fanning 058354_0.jpg DoppelVer_All_112x112/Elle_Fanning
    12_0.jpg``. The identity is the folder name under the top folder (``Elle_Fanning``). The file holds
    ``folds`` consecutive blocks of equal size: block k is split k. With ``images_root``, each path is
    joined to it (``images_root / pathA``: the root is the folder holding ``DoppelVer_All_112x112``).

    Raises:
        LookalikeError: unreadable file, a malformed line (naming its line number), or a pair count not
            divisible by ``folds``.
    """
    path = Path(path)
    if folds < 1:
        raise LookalikeError(f"folds must be at least 1, got {folds}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LookalikeError(f"cannot read DoppelVer protocol {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise LookalikeError(f"DoppelVer protocol {path} is not UTF-8 text") from exc
    src_a: list[str] = []
    src_b: list[str] = []
    ida: list[str] = []
    idb: list[str] = []
    same: list[bool] = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            continue
        label, sep, rest = line.partition(" ")
        if label not in ("0", "1") or not sep:
            raise LookalikeError(f"{path.name} line {lineno}: expected 'label pathA pathB' with label 0 or 1")
        parts = _split_paths(rest)
        if parts is None:
            raise LookalikeError(f"{path.name} line {lineno}: cannot tell where the second image path begins")
        id_pair = _doppelver_identity(parts[0]), _doppelver_identity(parts[1])
        if not all(id_pair):
            raise LookalikeError(f"{path.name} line {lineno}: cannot read an identity from the image paths")
        src_a.append(parts[0])
        src_b.append(parts[1])
        ida.append(id_pair[0])
        idb.append(id_pair[1])
        same.append(label == "1")
    n = len(same)
    if n == 0:
        raise LookalikeError(f"DoppelVer protocol {path} holds no pairs")
    if n % folds:
        raise LookalikeError(f"DoppelVer protocol {path}: {n} pairs do not divide into {folds} equal folds")
    name = path.stem.split("_")[0].lower() or "doppelver"
    return PairProtocol(
        a=[_rooted(p, images_root) for p in src_a],
        b=[_rooted(p, images_root) for p in src_b],
        same=np.array(same, dtype=bool),
        split=np.arange(n, dtype=np.int64) // (n // folds),
        name=name,
        identity_a=ida,
        identity_b=idb,
        source_a=src_a,
        source_b=src_b,
    )


def write_doppelver_pairs(protocol: PairProtocol, path: Path) -> None:
    """Write ``protocol`` in the published DoppelVer format: ``label pathA pathB`` per line, ``\\n`` ends.

    Pairs are written in their current order (split blocks stay consecutive when the protocol was read or
    generated here); the paths written are ``source_a`` / ``source_b`` (unrooted). The write is atomic:
    a temp file beside ``path``, then ``os.replace``. Reading a published file and writing it back gives
    the identical bytes.
    """
    assert protocol.source_a is not None and protocol.source_b is not None
    for i, (pa, pb) in enumerate(zip(protocol.source_a, protocol.source_b, strict=True)):
        if "\n" in pa or "\n" in pb or "\r" in pa or "\r" in pb:
            raise LookalikeError(f"pair {i + 1}: an image path holds a line break")
    text = "".join(
        f"{int(s)} {pa} {pb}\n" for s, pa, pb in zip(protocol.same, protocol.source_a, protocol.source_b, strict=True)
    )
    atomic_write_text(Path(path), text)


def load_doppel_pair_list(csv_path: Path) -> list[tuple[str, str]]:
    """Read a list of doppelganger identity pairs, names normalised to LFW's underscore form.

    Accepts DoppelVer's ``doppelganger_pairs.csv`` (header ``Pair 1,Pair 2``, names with spaces such as
    ``Katy Perry``) and the derived ``identity_a,identity_b,...`` files; only the first two columns are
    read. Runs of whitespace become one underscore (``Katy Perry`` -> ``Katy_Perry``).
    """
    csv_path = Path(csv_path)
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise LookalikeError(f"cannot read doppelganger pair list {csv_path}: {exc.strerror or exc}") from exc
    if not rows:
        raise LookalikeError(f"doppelganger pair list {csv_path} is empty")
    header = [h.strip().lower() for h in rows[0][:2]]
    if header not in (["pair 1", "pair 2"], ["identity_a", "identity_b"]):
        raise LookalikeError(f"{csv_path.name} line 1: expected header 'Pair 1,Pair 2' or 'identity_a,identity_b'")
    pairs: list[tuple[str, str]] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise LookalikeError(f"{csv_path.name} line {lineno}: expected two identity names")
        pairs.append((_normalise_name(row[0]), _normalise_name(row[1])))
    return pairs


def _normalise_name(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip())


# ---------------------------------------------------------------------------------------- generator


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
