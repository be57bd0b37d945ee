"""Crops on real photos: the CCA crop levels the eyes and centres their midpoint; the ArcFace crop fits."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.faces.align import (
    ARCFACE_TEMPLATE,
    FaceGeometry,
    arcface_crop,
    cca_crop,
    margin_crop,
    similarity_matrix,
)
from lookalike.faces.photos import Photo, load_photo
from tests.conftest import require_data


def _real_faces(detector, n: int = 12):
    root = require_data("gallery", "deepface")
    paths = sorted(root.rglob("*.jpg"))[:n] + sorted(require_data("gallery", "five_celebrity").rglob("*.jpg"))[:n]
    photos = [p for p in (load_photo(x) for x in paths) if isinstance(p, Photo)]
    found = detector.detect([p.rgb for p in photos])
    return [(p, fs[0]) for p, fs in zip(photos, found) if fs]


def test_cca_crop_levels_eyes_and_centres_them(detector):
    faces = _real_faces(detector)
    assert len(faces) >= 15
    tilted = 0
    for photo, face in faces:
        lm = face.landmarks
        tilted += abs(lm[0, 1] - lm[1, 1]) > 3
        crop, lm2 = cca_crop(photo.rgb, face.geometry)
        h, w = crop.shape[:2]
        assert abs(lm2[0, 1] - lm2[1, 1]) <= 1.0, "eyes not on one row"
        mid = (lm2[0] + lm2[1]) / 2
        assert abs(mid[0] - (w - 1) / 2) <= 2.0 and abs(mid[1] - (h - 1) / 2) <= 2.0, "eye midpoint off centre"
        assert crop.dtype == np.uint8 and crop.ndim == 3
    assert tilted >= 3, "the check needs some tilted faces to mean anything"


def test_cca_crop_pixels_follow_the_landmarks(detector):
    """Re-detecting on the CCA crop finds the eyes where cca_crop says they are (pixels really moved)."""
    photo, face = _real_faces(detector, 4)[0]
    crop, lm2 = cca_crop(photo.rgb, face.geometry)
    again = detector.detect([crop])[0]
    assert again, "no face found again in the CCA crop"
    best = min(again, key=lambda f: np.abs(f.landmarks - lm2).sum())
    scale = np.linalg.norm(lm2[0] - lm2[1])
    assert np.abs(best.landmarks[:2] - lm2[:2]).max() < 0.15 * scale


def test_arcface_crop_maps_landmarks_onto_template(detector):
    photo, face = _real_faces(detector, 4)[0]
    crop = arcface_crop(photo.rgb, face.geometry)
    assert crop.shape == (112, 112, 3)
    mat = similarity_matrix(face.landmarks, ARCFACE_TEMPLATE)
    mapped = np.hstack([face.landmarks, np.ones((5, 1))]) @ mat.T
    assert np.abs(mapped - ARCFACE_TEMPLATE).max() < 8  # 5-point fit residual, pixels of 112


def test_similarity_recovers_a_known_transform_and_survives_degenerate_points():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    theta, s, t = 0.3, 1.7, np.array([5.0, -3.0])
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    dst = s * src @ rot.T + t
    mat = similarity_matrix(src, dst)
    assert np.allclose(mat[:, :2], s * rot) and np.allclose(mat[:, 2], t)
    same = similarity_matrix(np.full((5, 2), 7.0), ARCFACE_TEMPLATE)  # all landmarks on one pixel
    assert np.all(np.isfinite(same)) and np.allclose(same[:, 2], ARCFACE_TEMPLATE.mean(0) - 7.0)


def _umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The closed form the engine used before scikit-image (Umeyama 1991), kept here as the reference."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    u, sv, vt = np.linalg.svd(dc.T @ sc / len(src))
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (sv * d).sum() / ((sc**2).sum() / len(src))
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def test_arcface_crops_unchanged_by_the_library_swap(detector):
    """scikit-image's transform gives the crops the hand-written one gave, on real faces."""
    import cv2

    for photo, face in _real_faces(detector, 6):
        old = cv2.warpAffine(photo.rgb, _umeyama(face.landmarks.astype(np.float64), ARCFACE_TEMPLATE), (112, 112),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        assert np.array_equal(arcface_crop(photo.rgb, face.geometry), old)


@pytest.mark.parametrize("box", [(10, 10, 60, 70), (-5, -5, 40, 40), (80, 80, 140, 150)])
def test_margin_crop_is_square_and_clamped(box):
    img = np.random.default_rng(1).integers(0, 255, (120, 100, 3), dtype=np.uint8)
    face = FaceGeometry(np.array(box, np.float32), np.zeros((5, 2), np.float32))
    assert margin_crop(img, face).shape == (160, 160, 3)
