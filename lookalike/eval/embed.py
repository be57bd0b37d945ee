"""Embeddings of the photos a protocol names, from a cached per-head index (a re-run embeds nothing new).

A photo where the detector finds no face has no vector: `PhotoVectors.found` is False for it, and
`pair_scores` scores every pair touching it as `MISSING_SCORE` (cosine -1, i.e. "different") for every
head alike.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.index.store import FaceStore, vectors_of

#: The score of a pair with a photo where no face was found: below any cosine, so always "different".
MISSING_SCORE = -1.0
MISSING_RULE = (
    "a pair with a photo where the detector finds no face is scored cosine -1 (always 'different'), "
    "the same for every head"
)


@dataclass
class PhotoVectors:
    """Main-face vectors of a list of photos.

    paths: the photos, `P` absolute paths (unique).
    vectors: `(P, dim) float32`, L2-normalised; zero rows where no face was found.
    found: `(P,) bool`.
    """

    paths: list[str]
    vectors: np.ndarray
    found: np.ndarray

    def rows(self, paths: list[str]) -> np.ndarray:
        """Row of each path in `self.paths`: `(len(paths),) int64`."""
        pos = {p: k for k, p in enumerate(self.paths)}
        return np.array([pos[os.path.abspath(p)] for p in paths], dtype=np.int64)


def main_face_vectors(index_dir: Path, paths: list[str]) -> PhotoVectors:
    """The main face's vector of each of `paths` (absolute) as stored in the index at `index_dir`."""
    store = FaceStore.open(index_dir)
    t = store.faces(["path", "is_main", "embedding"])
    t = t.filter(t["is_main"])
    vec = vectors_of(t, store.dim)
    pos = {p: k for k, p in enumerate(t["path"].to_pylist())}
    out = np.zeros((len(paths), store.dim), np.float32)
    found = np.zeros(len(paths), bool)
    for k, p in enumerate(paths):
        r = pos.get(p)
        if r is not None:
            out[k] = vec[r]
            found[k] = True
    return PhotoVectors(list(paths), out, found)


def embed_photos(
    paths: list[str],
    head_name: str,
    index_dir: Path,
    labels: dict[str, str] | None = None,
    device: str | None = None,
    progress=None,
    detector: str | None = None,
) -> PhotoVectors:
    """Index `paths` (incrementally) into `index_dir` with head `head_name`, then read their vectors.

    Raises `WeightsMissingError` when the head's weights are absent (callers list the head as skipped).

    A fused head (`fused:a+b`) is not embedded again: its vectors are its parts' vectors from their own cache
    indexes (named like `index_dir` with the part's name in place of the fused one), joined as the fused head
    joins them (`combine_parts`). It is the same vector: the same detector picks the same main face, each part
    cuts its own crop from it (tests/heads/test_fused.py checks the fused head against its parts).
    """
    from lookalike.heads import get_head_spec

    spec = get_head_spec(head_name)
    if spec.parts:
        parts = []
        for part, _ in spec.parts:
            part_dir = index_dir.with_name(index_dir.name.replace(head_name, part))
            if part_dir == index_dir:
                raise ValueError(f"cannot name part {part!r}'s cache after {index_dir}: it must contain {head_name!r}")
            parts.append(embed_photos(paths, part, part_dir, labels, device, progress, detector))
        return combine_parts(parts, [w for _, w in spec.parts])
    from lookalike.index.runner import IndexOptions, run_index
    from lookalike.index.settings import resolve

    uniq = sorted({os.path.abspath(p) for p in paths})
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(uniq) + "\n")
        listing = fh.name
    try:
        settings = resolve(listing, out=index_dir, head=head_name, detector=detector)  # refuses another head's index
        head, det = settings.load(device)
        run_index(listing, settings.out, head, det, IndexOptions(labels=labels), progress)
    finally:
        os.unlink(listing)
    return main_face_vectors(index_dir, uniq)


def combine_parts(parts: list[PhotoVectors], weights: list[float]) -> PhotoVectors:
    """The vectors of a fused head from its parts' (same photos, same order): each part scaled by
    sqrt(w / sum w) and concatenated (`lookalike.heads.fused`); a photo counts as found when every part found it."""
    total = sum(weights)
    vectors = np.concatenate([p.vectors * np.sqrt(w / total) for p, w in zip(parts, weights, strict=True)], axis=1)
    found = np.logical_and.reduce([p.found for p in parts])
    vectors[~found] = 0
    return PhotoVectors(parts[0].paths, vectors.astype(np.float32), found)


def pair_scores(pv: PhotoVectors, a: list[str], b: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of each pair `(a[k], b[k])`: `(scores (n,) float64, missing (n,) bool)`."""
    ra, rb = pv.rows(a), pv.rows(b)
    s = np.einsum("ij,ij->i", pv.vectors[ra], pv.vectors[rb]).astype(np.float64)
    missing = ~(pv.found[ra] & pv.found[rb])
    s[missing] = MISSING_SCORE
    return s, missing
