"""Protocol files from a labelled gallery: the doppelganger protocol, and shared helpers for writing any
generated protocol in the published format (equal consecutive splits, paths relative to the images root).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lookalike.atomic import atomic_write_text
from lookalike.errors import LookalikeError
from lookalike.eval.protocols import (
    PairProtocol,
    generate_doppelganger_protocol,
    load_doppel_pair_list,
    load_doppelver_pairs,
    write_doppelver_pairs,
)
from lookalike.faces.photos import iter_photo_files

#: Sidecar beside a protocol file whose splits are not equal consecutive blocks: one split id per line.
SPLITS_SUFFIX = ".splits"


def write_protocol(proto: PairProtocol, out: Path) -> None:
    """Write `proto` in the published format; when its splits are not equal consecutive blocks (a small gallery
    kept whole), also write `OUT.splits` (one split id per pair) so `load_protocol` reads the true splits."""
    out = Path(out)
    write_doppelver_pairs(proto, out)
    n, k = len(proto), int(proto.split.max()) + 1 if len(proto) else 1
    side = out.with_name(out.name + SPLITS_SUFFIX)
    equal = n % k == 0 and np.array_equal(proto.split, np.arange(n) // (n // k))
    if equal:
        side.unlink(missing_ok=True)
    else:
        atomic_write_text(side, "".join(f"{int(x)}\n" for x in proto.split))


def load_protocol(path: Path, images_root: Path | None = None) -> PairProtocol:
    """A protocol file in the published format, with its `.splits` sidecar when there is one."""
    path = Path(path)
    side = path.with_name(path.name + SPLITS_SUFFIX)
    if not side.exists():
        return load_doppelver_pairs(path, images_root)
    proto = load_doppelver_pairs(path, images_root, folds=1)
    split = np.array([int(x) for x in side.read_text().split()], dtype=np.int64)
    if split.size != len(proto):
        raise LookalikeError(f"{side} holds {split.size} split ids for {len(proto)} pairs")
    proto.split = split
    return proto


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


def relative_to(proto: PairProtocol, root: Path) -> PairProtocol:
    """The same protocol with `source_a/b` (what gets written) relative to the images root."""
    root = os.path.abspath(root)

    def rel(p: str) -> str:
        r = os.path.relpath(os.path.abspath(p), root)
        if r.startswith(".."):
            raise LookalikeError(f"{p} is not under the images root {root}")
        return r.replace(os.sep, "/")

    proto.source_a = [rel(p) for p in proto.a]
    proto.source_b = [rel(p) for p in proto.b]
    return proto


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
