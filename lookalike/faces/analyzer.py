"""The one face-analysis path: decoded photos -> faces with box, landmarks, probability, crop and embedding.

A `FaceAnalyzer` holds a detector, a head (optional: crops only) and the selection rule (`select_faces`: main
face first, the best face of a photo known to show someone). Indexing, querying, reranking, the crops of the
learned-similarity features and the benchmarks all go through it, so one photo gives one vector whichever verb
asks, and a query keeps its face's crop and vector instead of detecting again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from lookalike.faces.align import FaceGeometry, crop_face
from lookalike.faces.detect import DetectedFace, Detector, select_faces
from lookalike.faces.photos import Photo


class Embedder(Protocol):
    """What the analyzer needs of a head (`lookalike.heads.Head` is one): its crop, and crops -> unit vectors.
    Heads sit above faces (a head names its crop here), so this room does not import them."""

    @property
    def crop(self) -> str: ...

    def embed(self, crops: np.ndarray, batch_size: int = 64) -> np.ndarray: ...


@dataclass
class Face:
    """One face of a photo.

    index: its place in the photo's faces, 0 = the main face.
    box: `(4,) float32` x1, y1, x2, y2; landmarks: `(5, 2) float32`, both in the file's upright pixels (a photo
    decoded reduced is scaled back); prob: the detector's probability.
    crop: `(S, S, 3) uint8 RGB`, the head's crop (None when not asked for).
    embedding: `(dim,) float32`, L2-normalised (None without a head or when not asked for).
    """

    index: int
    box: np.ndarray
    landmarks: np.ndarray
    prob: float
    crop: np.ndarray | None = None
    embedding: np.ndarray | None = None

    @property
    def geometry(self) -> FaceGeometry:
        return FaceGeometry(self.box, self.landmarks)


@dataclass(frozen=True)
class FaceFailure:
    """Why a photo has no face to use: a `kind` callers branch on, and the detail the kind needs. The words are
    the caller's (`lookalike.search.asking.failure_words` for a query, the index's reject reason)."""

    NO_FACE = "no-face"  # the detector found none at its min probability
    TOO_SMALL = "too-small"  # the photo is too small to search (detail: sizes, from the detector)
    NO_SUCH_FACE = "no-such-face"  # a face was asked for by number and the photo has fewer

    kind: str
    detail: str = ""
    asked: int | None = None  # NO_SUCH_FACE: the face asked for
    faces: int = 0  # NO_SUCH_FACE: how many the photo has

    def __str__(self) -> str:
        if self.kind == self.NO_FACE:
            return "no face found"
        if self.kind == self.NO_SUCH_FACE:
            return f"no face {self.asked}: the photo has {self.faces} face(s), numbered 0..{self.faces - 1}"
        return self.detail


@dataclass
class AnalyzedPhoto:
    """A photo's faces, main face first, or why it has none to use (`error`)."""

    photo: Photo
    faces: list[Face] = field(default_factory=list)
    error: FaceFailure | None = None


class FaceAnalyzer:
    """Detector + head + selection rule, over batches of decoded photos.

    crop: the crop to cut (default: the head's). Without a head or a crop it only finds faces (`find`).
    """

    def __init__(self, detector: Detector, head: Embedder | None = None, crop: str | None = None) -> None:
        self.detector = detector
        self.head = head
        self.crop = crop or (head.crop if head is not None else None)

    def find(self, photos: list[Photo], keep_best: list[bool] | bool = False) -> list[list[DetectedFace]]:
        """Faces of each photo, main face first; photos too small to search have none."""
        best = [keep_best] * len(photos) if isinstance(keep_best, bool) else list(keep_best)
        searchable = [i for i, p in enumerate(photos) if self.detector.too_small(*p.rgb.shape[:2]) is None]
        found = self.detector.detect_all([photos[i].rgb for i in searchable]) if searchable else []
        out: list[list[DetectedFace]] = [[] for _ in photos]
        for i, faces in zip(searchable, found, strict=True):
            h, w = photos[i].rgb.shape[:2]
            out[i] = select_faces(faces, w, h, self.detector.min_prob, best[i])
        return out

    def analyze(
        self,
        photos: list[Photo],
        keep_best: list[bool] | bool = False,
        face: int | None = None,
        embed: bool = True,
    ) -> list[AnalyzedPhoto]:
        """Detect, select, crop and (with a head, `embed`) embed in one batch across photos.

        face: keep only face `face` of each photo (0 = main); a photo without it gets an `error`.
        """
        if self.crop is None:
            raise ValueError("this FaceAnalyzer has no head and no crop: it can only find faces")
        out = [AnalyzedPhoto(p) for p in photos]
        for a in out:
            small = self.detector.too_small(*a.photo.rgb.shape[:2])
            a.error = FaceFailure(FaceFailure.TOO_SMALL, small) if small else None
        for a, faces in zip(out, self.find(photos, keep_best), strict=True):
            if a.error:
                continue
            if not faces:
                a.error = FaceFailure(FaceFailure.NO_FACE)
                continue
            chosen = list(enumerate(faces))
            if face is not None:
                if not 0 <= face < len(faces):
                    a.error = FaceFailure(FaceFailure.NO_SUCH_FACE, asked=face, faces=len(faces))
                    continue
                chosen = [chosen[face]]
            s = a.photo.scale  # a photo decoded reduced: crop from what was decoded, report the file's coordinates
            a.faces = [
                Face(i, f.box / s, f.landmarks / s, f.prob, crop_face(a.photo.rgb, f.geometry, self.crop))
                for i, f in chosen
            ]
        if embed and self.head is not None:
            self.embed([f for a in out for f in a.faces])
        return out

    def embed(self, faces: list[Face]) -> None:
        """Fill each face's embedding from its crop, all in one batch."""
        if not faces or self.head is None:
            return
        vectors = self.head.embed(np.stack([f.crop for f in faces]))
        for f, v in zip(faces, vectors, strict=True):
            f.embedding = v
