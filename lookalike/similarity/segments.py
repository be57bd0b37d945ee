"""A portrait cut into seed 000's segments from its 68 landmarks: facial parts, the face base, the background.

Parts are polygons around the landmark groups, widened so each holds the skin that frames it (an eye with its
lids, a brow with its thickness), and made disjoint in the order eyes, eyebrows, nose, mouth. The face is the
hull of the jaw line and a forehead drawn above the brows; the base is the face less its parts.

Hair: the seed separates it with its own hair-segmentation network. No maintained library here segments hair
offline (MediaPipe's hair segmenter is a download), so hair stays with the background as one segment,
"hair and background", chosen by its PCAM sum like the rest — which is the seed's rule for the background
("from the same portrait as the hair") with the two made one.
"""

from __future__ import annotations

import cv2
import numpy as np

from lookalike.faces.dense_landmarks import BROWS, EYES, JAW, MOUTH, NOSE

PARTS = ("eyes", "eyebrows", "nose", "mouth")
#: every segment of a portrait, in the order they are composed (later ones are drawn over earlier ones)
SEGMENTS = ("background", "base", *PARTS)


def _poly(mask: np.ndarray, pts: np.ndarray) -> None:
    hull = cv2.convexHull(np.round(pts).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)


def _scaled(pts: np.ndarray, sx: float, sy: float) -> np.ndarray:
    c = pts.mean(0)
    return c + (pts - c) * [sx, sy]


def segment_masks(points: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Boolean masks `(size, size)` of every segment in SEGMENTS from 68 landmarks `(68, 2)` in the portrait.

    Every pixel is in exactly one segment.
    """
    p = np.asarray(points, np.float64)
    eye_dist = max(float(np.linalg.norm(p[list(EYES[0])].mean(0) - p[list(EYES[1])].mean(0))), 1.0)
    raw = {k: np.zeros((size, size), np.uint8) for k in PARTS}
    for eye in EYES:
        _poly(raw["eyes"], _scaled(p[list(eye)], 1.45, 2.1))
    for brow in BROWS:
        b = p[list(brow)]
        thick = 0.12 * eye_dist
        _poly(raw["eyebrows"], np.vstack([_scaled(b, 1.15, 1.0) + [0, -0.4 * thick], b + [0, thick]]))
    nose = p[list(NOSE)]
    _poly(raw["nose"], _scaled(nose, 1.35, 1.08) + [0, 0.02 * eye_dist])
    _poly(raw["mouth"], _scaled(p[list(MOUTH)], 1.22, 1.5))
    face = np.zeros((size, size), np.uint8)
    brows = p[17:27]
    forehead = brows + [0, -0.55 * eye_dist]
    _poly(face, np.vstack([p[list(JAW)], forehead]))
    masks: dict[str, np.ndarray] = {}
    taken = np.zeros((size, size), bool)
    for k in PARTS:
        masks[k] = raw[k].astype(bool) & ~taken
        taken |= masks[k]
    masks["base"] = face.astype(bool) & ~taken
    masks["background"] = ~(face.astype(bool) | taken)
    return {k: masks[k] for k in SEGMENTS}


def segment_sums(pcam: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Total activation of a PCAM `(h, w)` inside each mask, the PCAM resized to the masks' size (bilinear)."""
    size = next(iter(masks.values())).shape[0]
    up = cv2.resize(pcam.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    return {k: float(up[m].sum()) for k, m in masks.items()}
