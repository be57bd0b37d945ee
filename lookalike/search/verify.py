"""Are two photos of the same person? One face from each (the main face, or a chosen one), the cosine of their
vectors, and a decision at a measured threshold (`lookalike.heads.calibration`) or one the caller gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.errors import LookalikeError
from lookalike.faces.analyzer import Face, FaceAnalyzer
from lookalike.faces.photos import Photo, load_photo, photo_from_array
from lookalike.heads.calibration import DEFAULT_FMR, SamePerson, threshold_for
from lookalike.paths import to_text
from lookalike.search.asking import failure_words

#: A photo: a file's path, a decoded `(H, W, 3)` RGB array, or a `Photo` already decoded (an upload).
Image = str | Path | np.ndarray | Photo


@dataclass
class Verdict:
    """The answer for one pair: the cosine, the threshold it was held against and the decision."""

    a: str
    b: str
    head: str
    detector: str
    score: float
    threshold: float
    same_person: bool
    point: SamePerson | None = None  # the measured operating point behind `threshold` (None: the caller's own)
    faces: tuple[Face, Face] | None = field(default=None, repr=False)

    def as_json(self) -> dict:
        out = {"a": self.a, "b": self.b, "head": self.head, "detector": self.detector,
               "score": round(self.score, 6), "threshold": self.threshold, "same_person": self.same_person}  # fmt: skip
        if self.point is not None:
            out.update(fmr=self.point.fmr, tmr=self.point.tmr, source=self.point.source)
        if self.faces is not None:
            out["face_a"], out["face_b"] = ([round(float(v), 1) for v in f.box] for f in self.faces)
        return out


def face_of(analyzer: FaceAnalyzer, image: Image, name: str, face: int = 0) -> Face:
    """Face `face` (0: the main face) of one photo, embedded; its best face counts even below the min probability
    (the photo is known to show someone). Raises a one-line `LookalikeError` for a bad file or no face."""
    side = analyzer.detector.max_side
    if isinstance(image, Photo):
        photo = image
    elif isinstance(image, np.ndarray):
        photo = photo_from_array(image, name)
    else:
        photo = load_photo(image, draft_side=side)
    if not isinstance(photo, Photo):
        raise LookalikeError(f"cannot use {name}: {photo.reason}")
    found = analyzer.analyze([photo], keep_best=True, face=face)[0]
    if found.error:
        raise LookalikeError(failure_words(found.error, name))
    return found.faces[0]


def verify(
    analyzer: FaceAnalyzer,
    a: Image,
    b: Image,
    threshold: float | None = None,
    fmr: float = DEFAULT_FMR,
    face_a: int = 0,
    face_b: int = 0,
) -> Verdict:
    """Compare the faces of `a` and `b` (files, or `(H, W, 3)` RGB uint8 arrays) with `analyzer`'s detector and
    head; same person when the cosine is at or above `threshold`, by default the one measured at `fmr`."""
    assert analyzer.head is not None, "verify needs an analyzer with a head"
    head, det = analyzer.head.name, analyzer.detector.name
    point = None if threshold is not None else threshold_for(head, det, fmr)
    t = float(threshold) if threshold is not None else point.threshold  # type: ignore[union-attr]
    names = [_name(x, which) for x, which in ((a, "a"), (b, "b"))]
    fa = face_of(analyzer, a, names[0], face_a)
    fb = face_of(analyzer, b, names[1], face_b)
    score = float(np.dot(fa.embedding, fb.embedding))
    return Verdict(names[0], names[1], head, det, score, t, score >= t, point, (fa, fb))


def _name(image: Image, which: str) -> str:
    """How an answer names a photo: its path, an upload's file name, or `<array a>` / `<array b>`."""
    if isinstance(image, Photo):
        return image.stat.path
    if isinstance(image, np.ndarray):
        return f"<array {which}>"
    return to_text(image)
