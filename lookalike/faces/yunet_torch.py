"""YuNet on a torch device: the `yunet` detector's own int8bq ONNX file as a torch network, so a GPU detects a
batch of photos in one call instead of OpenCV's one photo at a time on the CPU.

`yunet_graph.folded_model` gives the file as a float graph and onnx2torch turns it into a torch module; its outputs
equal OpenCV dnn's on the same input to ~1e-6, and `yunet_graph.decode` turns them into `FaceDetectorYN.detect`'s
rows (tests/faces/test_yunet_torch.py compares them on real photos).

On a CPU onnxruntime runs the same graph faster (`yunet_ort`; torch took 147 ms in bf16 for a 1600x1200 photo on
this project's 2-core CPU), so this path is for CUDA devices. Needs `pip install 'lookalike[gpu]'` (onnx2torch).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from lookalike.errors import LookalikeError
from lookalike.faces.yunet_graph import decode, folded_model

#: A photo is zero-padded (bottom and right) to a multiple of this, as OpenCV pads it; photos of one padded size
#: share a network call. Padding further (to share calls between more sizes) moves large faces' scores: on a
#: 640x480 coarse pass padded to 512 rows a face's score fell from 0.81 to 0.72, so detections would depend on it.
BUCKET = 32
INSTALL_HINT = "pip install 'lookalike[gpu]' (onnx and onnx2torch)"


@cache
def _network(path: str, device: str):
    try:
        import onnx2torch
    except ImportError:
        raise LookalikeError(f"YuNet on a torch device needs onnx2torch: {INSTALL_HINT}") from None
    return onnx2torch.convert(folded_model(Path(path), hint=INSTALL_HINT)).eval().to(device)


class TorchYuNet:
    """YuNet over batches of BGR images on a torch device; `detect` returns `FaceDetectorYN.detect`'s rows."""

    batches = True  # `detect` takes many images in one call

    def __init__(self, path: Path, device: str, score_threshold: float, nms_threshold: float, top_k: int) -> None:
        from lookalike.config import check_device

        check_device(device)
        self.device = device
        try:
            self.net = _network(str(path), device)
        except LookalikeError:
            raise
        except Exception as e:  # a damaged file, or a graph this onnx2torch cannot convert: one line
            why = (str(e).strip().splitlines() or [type(e).__name__])[-1][:200]
            raise LookalikeError(f"detector 'yunet' cannot run {path} in torch ({why}): use --device cpu") from None
        self.score_threshold, self.nms_threshold, self.top_k = score_threshold, nms_threshold, top_k

    def detect(self, images: list[np.ndarray], batch_pixels: int = 16 * 1024 * 1024) -> list[np.ndarray]:
        """Rows per BGR image `(H, W, 3) uint8`; images of one size bucket run together, `batch_pixels` a call."""
        import torch

        out: list[np.ndarray] = [np.zeros((0, 15), np.float32)] * len(images)
        buckets: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            h, w = img.shape[:2]
            buckets.setdefault((-(-h // BUCKET) * BUCKET, -(-w // BUCKET) * BUCKET), []).append(i)
        for (ph, pw), idxs in buckets.items():
            step = max(1, batch_pixels // (ph * pw))
            for k in range(0, len(idxs), step):
                part = idxs[k : k + step]
                batch = np.zeros((len(part), ph, pw, 3), np.uint8)  # uint8 on the host, float on the device
                for j, i in enumerate(part):
                    h, w = images[i].shape[:2]
                    batch[j, :h, :w] = images[i]
                x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float().contiguous()
                with torch.inference_mode():
                    # the graph flattens its outputs to (1, -1, C): batch-major, so each image's rows come in turn
                    res = [t.float().cpu().numpy().reshape(len(part), -1, t.shape[-1]) for t in self.net(x)]
                for j, i in enumerate(part):
                    h, w = images[i].shape[:2]
                    rows = decode([r[j] for r in res], ph, pw, self.score_threshold, self.nms_threshold, self.top_k)
                    centre_x, centre_y = rows[:, 0] + rows[:, 2] / 2, rows[:, 1] + rows[:, 3] / 2
                    out[i] = rows[(centre_x < w) & (centre_y < h)]  # nothing found in the shared padding
        return out
