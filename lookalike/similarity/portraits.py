"""Aligned portraits of a person, and seed 000's choice of the most symmetric one (eq. 10).

An aligned portrait is the photo warped by a similarity transform (no shear: a face keeps its shape) so its 5
landmarks land on one symmetric template, at twice the FaceNet crop's 160 px. The template is the median of
where the detector's landmarks fall in facenet160 crops of 100 LFW photos, made left-right symmetric about the
centre column, so the head sees the framing it was trained on (resized to 160) and a portrait's halves mirror
about its middle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lookalike.faces.align import similarity_matrix

SIZE = 320
#: eyes, nose tip, mouth corners in a SIZE x SIZE portrait (the facenet160 median, symmetric, x2)
TEMPLATE = np.array([[51.5, 65.0], [108.5, 65.0], [80.0, 90.5], [56.0, 110.5], [104.0, 110.5]]) * (SIZE / 160)
#: where dlib's HOG detector puts the face in such a portrait (median over 100 LFW portraits, centred)
FACE_BOX = (53, 66, 267, 281)


@dataclass
class Portraits:
    """A person's aligned portraits.

    paths: `N` photo paths with a face (input order). images: `(N, SIZE, SIZE, 3) uint8 RGB`.
    missing: input paths without a usable face, with the reason.
    """

    paths: list[str]
    images: np.ndarray
    missing: dict[str, str]


def align_portrait(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The aligned portrait `(SIZE, SIZE, 3)` of the face whose 5 landmarks `(5, 2)` are in `rgb`'s pixels."""
    mat = similarity_matrix(landmarks, TEMPLATE)
    return cv2.warpAffine(rgb, mat, (SIZE, SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def load_portraits(paths: list[str | Path], detector=None, known: dict[str, np.ndarray] | None = None) -> Portraits:
    """Each photo's main face as an aligned portrait; an unreadable photo or one without a face is `missing`.

    known: photo path -> the 5 landmarks `(5, 2)` of the face to take, in the file's pixels (an index's face,
    which need not be the photo's main one); those photos are not searched again.
    """
    from lookalike.faces.analyzer import FaceAnalyzer
    from lookalike.faces.detect import create_detector
    from lookalike.faces.photos import Photo, load_photo

    known = {os.path.abspath(k): np.asarray(v, np.float64).reshape(5, 2) for k, v in (known or {}).items()}
    analyzer: FaceAnalyzer | None = None
    keep, images, missing = [], [], {}
    abspaths = [os.path.abspath(p) for p in paths]
    for i in range(0, len(abspaths), 16):
        photos = []
        for p in abspaths[i : i + 16]:
            item = load_photo(p)
            if isinstance(item, Photo):
                photos.append((p, item))
            else:
                missing[p] = item.reason
        todo = [ph for p, ph in photos if p not in known]
        if todo and analyzer is None:
            analyzer = FaceAnalyzer(detector or create_detector(), crop="facenet160")
        found = iter(analyzer.analyze(todo, keep_best=True, face=0, embed=False) if todo else [])
        for p, ph in photos:
            if p in known:
                landmarks = known[p]
            else:
                a = next(found)
                if a.error:
                    missing[p] = str(a.error)
                    continue
                landmarks = a.faces[0].landmarks
            # landmarks are in the file's coordinates; the pixels are the decoded (maybe reduced) photo's
            images.append(align_portrait(ph.rgb, landmarks * ph.scale))
            keep.append(p)
    stack = np.stack(images) if images else np.zeros((0, SIZE, SIZE, 3), np.uint8)
    return Portraits(keep, stack, missing)


def head_input(images: np.ndarray, size: int = 160) -> np.ndarray:
    """Portraits `(N, SIZE, SIZE, 3)` resized to the head's `(N, size, size, 3)` crop."""
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])


def half_mirrors(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P_L and P_R of eq. 10: the left (right) half kept and reflected over the other half."""
    w = image.shape[1] // 2
    left, right = image.copy(), image.copy()
    left[:, w:] = image[:, :w][:, ::-1][:, : image.shape[1] - w]
    right[:, : image.shape[1] - w] = image[:, w:][:, ::-1][:, : image.shape[1] - w]
    return left, right


def symmetry_scores(images: np.ndarray, head, vectors: np.ndarray | None = None) -> np.ndarray:
    """Eq. 10 per portrait: max over r in {L, R} of ||f_i - f_i,r||^2 with f the head's unit embedding `(N,)`.

    Small = the most symmetric by deep features: frontal, evenly lit, nothing covering half the face.
    vectors: the portraits' embeddings when already computed.
    """
    mirrored = [m for im in images for m in half_mirrors(im)]
    f = _unit(head.embed(head_input(images)) if vectors is None else vectors)
    fm = _unit(head.embed(head_input(np.stack(mirrored)))).reshape(len(images), 2, -1)
    return ((f[:, None, :] - fm) ** 2).sum(-1).max(1)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
