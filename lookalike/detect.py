"""Face detection with MTCNN (facenet-pytorch; its wheel carries the weights): box, probability, 5 landmarks.

Large photos are detected on a downscaled copy (`max_side`) and the boxes mapped back, so a 50 MP photo
costs what a 2 MP one does; crops are still cut from the full-resolution pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .align import FaceGeometry


def _heap_trimmer():
    """glibc's malloc_trim, or a no-op elsewhere.

    MTCNN's pyramid allocates tensors of a new size for every batch; glibc keeps the freed pieces, and a long
    run grew by ~100 MB per 160 photos without a trim (measured), with one it stays flat.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return lambda: libc.malloc_trim(0)
    except (OSError, AttributeError):
        return lambda: None


_trim_heap = _heap_trimmer()


@dataclass(frozen=True)
class DetectedFace:
    """One face: box `(4,) float32` x1,y1,x2,y2, landmarks `(5, 2) float32`, probability, image pixels."""

    box: np.ndarray
    landmarks: np.ndarray
    prob: float

    @property
    def geometry(self) -> FaceGeometry:
        return FaceGeometry(self.box, self.landmarks)

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))


def main_face_order(faces: list[DetectedFace], width: int, height: int) -> list[int]:
    """Indices of `faces`, main face first: the largest, discounted by distance from the photo centre.

    score = area * (1 - 0.5 * d / d_max), d the box centre's distance to the photo centre, so of two faces
    of a size the central one wins, and a face must be much larger to win from the edge.
    """
    cx, cy = width / 2, height / 2
    d_max = float(np.hypot(cx, cy)) or 1.0

    def score(f: DetectedFace) -> float:
        fx, fy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
        return f.area * (1 - 0.5 * float(np.hypot(fx - cx, fy - cy)) / d_max)

    return sorted(range(len(faces)), key=lambda i: -score(faces[i]))


class FaceDetector:
    """MTCNN over batches of RGB photos; every face with probability >= `min_prob` is kept."""

    def __init__(
        self,
        min_prob: float = 0.9,
        min_face_size: int = 20,
        max_side: int = 1600,
        device: str | None = None,
        batch_pixels: int = 1_000_000,
    ) -> None:
        import torch
        from facenet_pytorch import MTCNN

        self.min_prob = float(min_prob)
        self.min_face_size = int(min_face_size)
        self.max_side = int(max_side)
        # MTCNN's working memory grows with the pixels of one call (measured: +540 MB for 32 photos of 250x250,
        # +240 MB for 8, 10% slower): a call gets at most this many pixels, and at least one photo.
        self.batch_pixels = int(batch_pixels)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._mtcnn = MTCNN(keep_all=True, min_face_size=min_face_size, device=self.device)

    @staticmethod
    def describe(min_prob: float = 0.9, min_face_size: int = 20, max_side: int = 1600) -> dict:
        """What a manifest records so a later run detects the same way (no model is loaded)."""
        return {
            "detector": "mtcnn-facenet-pytorch",
            "min_prob": float(min_prob),
            "min_face_size": int(min_face_size),
            "max_side": int(max_side),
        }

    @property
    def params(self) -> dict:
        return self.describe(self.min_prob, self.min_face_size, self.max_side)

    def too_small(self, height: int, width: int) -> str | None:
        """Why an image of this size cannot be searched for faces, or None.

        MTCNN's image pyramid starts at `min_face_size` pixels per 12-pixel window: an image whose short side
        (after downscaling to `max_side`) is under `min_face_size` has no pyramid level at all.
        """
        f = min(1.0, self.max_side / max(height, width, 1))
        h, w = round(height * f), round(width * f)
        if min(h, w) >= self.min_face_size:
            return None
        if f < 1.0:
            return (
                f"too small: {width}x{height} is {w}x{h} once scaled to {self.max_side} px on the long side, "
                f"under {self.min_face_size} px on the short side"
            )
        return f"too small: {width}x{height} (faces are looked for from {self.min_face_size} px)"

    def detect(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces per image, in the detector's order. images: RGB `(H, W, 3) uint8`, any sizes.

        Images of one size after downscaling go through MTCNN together, `batch_pixels` at a time; an image
        too small to search (`too_small`) has no faces.
        """
        scaled: list[np.ndarray] = []
        factors: list[float] = []
        for img in images:
            h, w = img.shape[:2]
            f = min(1.0, self.max_side / max(h, w))
            scaled.append(
                img if f == 1.0 else cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
            )
            factors.append(f)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(scaled):
            if self.too_small(*images[i].shape[:2]) is None and min(img.shape[:2]) >= self.min_face_size:
                by_shape.setdefault(img.shape, []).append(i)
        out: list[list[DetectedFace]] = [[] for _ in images]
        calls = []
        for shape, idxs in by_shape.items():
            step = max(1, self.batch_pixels // (shape[0] * shape[1]))
            calls.extend(idxs[k : k + step] for k in range(0, len(idxs), step))
        for idxs in calls:
            batch = np.stack([scaled[i] for i in idxs])
            boxes, probs, points = self._mtcnn.detect(batch, landmarks=True)
            for j, i in enumerate(idxs):
                if boxes[j] is None:
                    continue
                f = factors[i]
                for b, p, lm in zip(boxes[j], probs[j], points[j], strict=False):
                    if p is None or p < self.min_prob:
                        continue
                    out[i].append(
                        DetectedFace(
                            box=(np.asarray(b, dtype=np.float32) / f),
                            landmarks=(np.asarray(lm, dtype=np.float32) / f),
                            prob=float(p),
                        )
                    )
        _trim_heap()
        return out
