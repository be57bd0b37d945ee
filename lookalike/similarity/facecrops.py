"""Main-face crops of a list of photos, with their landmarks mapped into the crop.

The learned-similarity features (PCAM, metric reranking, trained heads) need the head crop of many photos
and, for face parts, where the landmarks land in it. Detection is the slow step, so a photo already in an
index reuses the box and landmarks stored there (`geometry_from_index`) instead of running MTCNN again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.faces.align import FaceGeometry, crop_face, margin_box
from lookalike.faces.analyzer import FaceAnalyzer
from lookalike.faces.detect import Detector, create_detector
from lookalike.faces.photos import Photo, load_photo


@dataclass
class FaceCrops:
    """Main-face crops of the photos where a face was found.

    paths: `N` absolute paths (those with a face, in input order).
    crops: `(N, S, S, 3) uint8 RGB`, the head's crop.
    landmarks: `(N, 5, 2) float32`, landmarks in crop pixels (MTCNN order: eyes, nose, mouth corners).
    missing: input paths with no usable face (unreadable or no face), with the reason.
    """

    paths: list[str]
    crops: np.ndarray
    landmarks: np.ndarray
    missing: dict[str, str]


def landmarks_in_crop(face: FaceGeometry, width: int, height: int, crop: str, size: int) -> np.ndarray:
    """Landmarks `(5, 2)` mapped into the crop's pixels (margin crops only; others get NaN)."""
    if crop != "facenet160":
        return np.full((5, 2), np.nan, np.float32)
    x1, y1, x2, y2 = margin_box(width, height, face.box, size)
    lm = (face.landmarks.astype(np.float64) - [x1, y1]) * [size / (x2 - x1), size / (y2 - y1)]
    return lm.astype(np.float32)


def geometry_from_index(index_dir: str | Path) -> dict[str, FaceGeometry]:
    """Main-face box and landmarks of every photo in an index, by absolute path."""
    from lookalike.index.store import FaceStore

    t = FaceStore.open(index_dir).faces(["path", "is_main", "box", "landmarks"])
    out: dict[str, FaceGeometry] = {}
    for p, m, b, lm in zip(*(t[c].to_pylist() for c in ("path", "is_main", "box", "landmarks")), strict=True):
        if m:
            out[p] = FaceGeometry(np.asarray(b, np.float32), np.asarray(lm, np.float32).reshape(5, 2))
    return out


def main_face_crops(
    paths: list[str | Path],
    crop: str = "facenet160",
    detector: Detector | None = None,
    geometry: dict[str, FaceGeometry] | None = None,
    batch: int = 32,
) -> FaceCrops:
    """Read each photo and cut its main face's crop; detect only photos `geometry` does not know.

    A photo that cannot be read, or has no face, lands in `missing` (never an exception).
    """
    geometry = geometry or {}
    analyzer: FaceAnalyzer | None = None
    keep_paths: list[str] = []
    crops: list[np.ndarray] = []
    lms: list[np.ndarray] = []
    missing: dict[str, str] = {}
    abspaths = [os.path.abspath(p) for p in paths]
    for i in range(0, len(abspaths), batch):
        chunk = abspaths[i : i + batch]
        photos: list[tuple[str, Photo]] = []
        for p in chunk:
            item = load_photo(p)
            if isinstance(item, Photo):
                photos.append((p, item))
            else:
                missing[p] = item.reason
        todo = [(p, ph) for p, ph in photos if p not in geometry]
        found: dict[str, FaceGeometry] = {}
        if todo:
            analyzer = analyzer or FaceAnalyzer(detector or create_detector(), crop=crop)
            # photos of a person: the best face counts below the min probability, as for a query
            analyzed = analyzer.analyze([ph for _, ph in todo], keep_best=True, face=0, embed=False)
            for (p, _), a in zip(todo, analyzed, strict=True):
                if not a.error:
                    found[p] = a.faces[0].geometry
        for p, ph in photos:
            g = geometry.get(p) or found.get(p)
            if g is None:
                missing[p] = "no face found"
                continue
            c = crop_face(ph.rgb, g, crop)
            h, w = ph.rgb.shape[:2]
            keep_paths.append(p)
            crops.append(c)
            lms.append(landmarks_in_crop(g, w, h, crop, c.shape[0]))
    if not crops:
        return FaceCrops([], np.zeros((0, 160, 160, 3), np.uint8), np.zeros((0, 5, 2), np.float32), missing)
    return FaceCrops(keep_paths, np.stack(crops), np.stack(lms), missing)
