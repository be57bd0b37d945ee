"""Face crops: the DoppelVer CCA crop and each head's canonical crop, from a box and 5 landmarks.

Landmarks are MTCNN's order, in image pixels: image-left eye, image-right eye, nose tip, image-left mouth
corner, image-right mouth corner. Every crop function takes an RGB image `(H, W, 3) uint8` and returns an RGB
crop `(S, S, 3) uint8` (CCA: variable size) so a head can batch them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

#: The 112x112 ArcFace/InsightFace 5-point template (also what OpenCV's SFace alignCrop uses).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class FaceGeometry:
    """Where a face is in its photo: box `(4,) x1,y1,x2,y2` and landmarks `(5, 2)`, image pixels."""

    box: np.ndarray
    landmarks: np.ndarray


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) mapping src to dst, as a `(2, 3)`
    affine matrix: scikit-image's `SimilarityTransform` (Umeyama 1991, what InsightFace aligns with).

    src, dst: `(N, 2)` float. Degenerate points (all in one place) give the shift of src's centre onto dst's.
    """
    from skimage.transform import SimilarityTransform  # imported on first use: 0.4 s a cold query need not pay

    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        tf = SimilarityTransform.from_estimate(src, dst)
        ok = bool(tf)
    else:  # pragma: no cover - older scikit-image
        tf = SimilarityTransform()
        ok = tf.estimate(src, dst)
    if not ok or not np.all(np.isfinite(tf.params)):
        mat = np.zeros((2, 3))
        mat[:, :2] = np.eye(2)
        mat[:, 2] = dst.mean(0) - src.mean(0)
        return mat
    return np.asarray(tf.params[:2], dtype=np.float64)


def arcface_crop(image: np.ndarray, face: FaceGeometry, size: int = 112) -> np.ndarray:
    """5-point similarity transform onto the ArcFace template: `(size, size, 3) uint8`."""
    template = ARCFACE_TEMPLATE * (size / 112.0)
    mat = similarity_matrix(face.landmarks, template)
    return cv2.warpAffine(image, mat, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def margin_box(
    width: int, height: int, box: np.ndarray, size: int = 160, margin: int = 32
) -> tuple[int, int, int, int]:
    """The pixel window FaceNet's crop cuts: the box plus `margin` pixels *of the output* around it, clamped.

    Same arithmetic as facenet-pytorch's `extract_face`. Returns `(x1, y1, x2, y2)` ints.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    mx = margin * (x2 - x1) / (size - margin)
    my = margin * (y2 - y1) / (size - margin)
    bx1, by1 = int(max(x1 - mx / 2, 0)), int(max(y1 - my / 2, 0))
    bx2, by2 = int(min(x2 + mx / 2, width)), int(min(y2 + my / 2, height))
    if bx2 <= bx1 or by2 <= by1:
        return 0, 0, width, height
    return bx1, by1, bx2, by2


def margin_crop(image: np.ndarray, face: FaceGeometry, size: int = 160, margin: int = 32) -> np.ndarray:
    """FaceNet's crop: `margin_box` resized square. The box is clamped to the image, so faces at the border are
    stretched rather than padded (as the network saw in training)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = margin_box(w, h, face.box, size, margin)
    return cv2.resize(image[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_LINEAR)


def cca_crop(image: np.ndarray, face: FaceGeometry, grow: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """DoppelVer's crop, align, centre (seed 003, section 7.3.2.1).

    1. Crop: the box grown by `grow` (50%) in width and height about its centre, clamped to the image.
    2. Align: rotate about the eye midpoint so both eyes share one row; pixels the rotation brings in are
       edge replicas ("same padding").
    3. Centre: replicate border pixels until the eye midpoint is equidistant to left/right and top/bottom.

    Returns the crop `(H', W', 3) uint8` (size varies with the face) and the landmarks `(5, 2)` in it.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in face.box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = (x2 - x1) * (1 + grow) / 2, (y2 - y1) * (1 + grow) / 2
    left, top = int(max(round(cx - half_w), 0)), int(max(round(cy - half_h), 0))
    right, bottom = int(min(round(cx + half_w), w)), int(min(round(cy + half_h), h))
    if right - left < 2 or bottom - top < 2:
        left, top, right, bottom = 0, 0, w, h
    crop = np.ascontiguousarray(image[top:bottom, left:right])
    lm = face.landmarks.astype(np.float64) - [left, top]

    eye_l, eye_r = lm[0], lm[1]
    mid = (eye_l + eye_r) / 2
    angle = np.degrees(np.arctan2(eye_r[1] - eye_l[1], eye_r[0] - eye_l[0]))
    rot = cv2.getRotationMatrix2D((float(mid[0]), float(mid[1])), float(angle), 1.0)
    ch, cw = crop.shape[:2]
    crop = cv2.warpAffine(crop, rot, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    lm = np.hstack([lm, np.ones((5, 1))]) @ rot.T

    # Pixel centre of a W-wide image is (W - 1) / 2: pad the short side so the midpoint lands there.
    mx, my = float(mid[0]), float(mid[1])
    pad_l = max(0, round((cw - 1) - 2 * mx))
    pad_r = max(0, round(2 * mx - (cw - 1)))
    pad_t = max(0, round((ch - 1) - 2 * my))
    pad_b = max(0, round(2 * my - (ch - 1)))
    crop = cv2.copyMakeBorder(crop, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    lm = lm + np.array([pad_l, pad_t])
    return crop, lm.astype(np.float32)


def cca_square(image: np.ndarray, face: FaceGeometry, size: int = 224) -> np.ndarray:
    """The CCA crop resized to `(size, size, 3)` for general-image heads (DINOv2, CLIP)."""
    crop, _ = cca_crop(image, face)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def dlib_crop(image: np.ndarray, face: FaceGeometry) -> np.ndarray:
    """dlib's own chip (its 5-point predictor, `get_face_chip`): see `lookalike.faces.dlib_align`."""
    from lookalike.faces.dlib_align import dlib_chip  # dlib is an optional extra, imported on first use

    return dlib_chip(image, face.box)


#: Crop name -> function(image, face) -> (S, S, 3) uint8. Heads name their crop here.
CROPS: dict[str, Callable[[np.ndarray, FaceGeometry], np.ndarray]] = {
    "arcface112": arcface_crop,
    "facenet160": margin_crop,
    "cca224": cca_square,
    "dlib150": dlib_crop,
}

#: The side of each crop, in pixels.
CROP_SIZES = {"arcface112": 112, "facenet160": 160, "cca224": 224, "dlib150": 150}

#: Joins the crops of a fused head's parts in one crop name ("arcface112+facenet160").
FUSED_SEP = "+"


def crop_parts(crop: str) -> list[str]:
    """The crops a (possibly fused) crop name stands for, each checked against `CROPS`."""
    parts = crop.split(FUSED_SEP)
    for part in parts:
        if part not in CROPS:
            raise ValueError(f"unknown crop {part!r}; known: {', '.join(sorted(CROPS))}")
    return parts


def crop_face(image: np.ndarray, face: FaceGeometry, crop: str) -> np.ndarray:
    """Apply the named crop (`CROPS` key).

    A fused name ("arcface112+facenet160", the crop of a fused head) gives its parts side by side in one strip
    `(max S, sum S, 3)`, each part top-aligned and the rest black: one array per face, so crops of many faces still
    stack into a batch, travel from the worker processes as one block and show as one thumbnail; `split_strip`
    cuts it back into the parts.
    """
    parts = crop_parts(crop)
    if len(parts) == 1:
        return CROPS[crop](image, face)
    tiles = [CROPS[p](image, face) for p in parts]
    strip = np.zeros((max(t.shape[0] for t in tiles), sum(t.shape[1] for t in tiles), 3), np.uint8)
    x = 0
    for t in tiles:
        strip[: t.shape[0], x : x + t.shape[1]] = t
        x += t.shape[1]
    return strip


def split_strip(crops: np.ndarray, crop: str) -> list[np.ndarray]:
    """A batch of fused crops `(N, H, W, 3)` -> one `(N, S, S, 3)` batch per part of `crop`, in its order."""
    out, x = [], 0
    for part in crop_parts(crop):
        size = CROP_SIZES[part]
        out.append(np.ascontiguousarray(crops[:, :size, x : x + size]))
        x += size
    return out
