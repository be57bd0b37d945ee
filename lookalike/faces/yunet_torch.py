"""YuNet on a torch device: the `yunet` detector's own int8bq ONNX file as a torch network, so a GPU detects a
batch of photos in one call instead of OpenCV's one photo at a time on the CPU.

The file is a plain float graph once its weights are dequantized (53 Conv, Relu, MaxPool, nearest Resize, Sigmoid,
Add, Transpose, Reshape; the int8 weights are blockwise `DequantizeLinear` constants): `folded_model` dequantizes
them (w = (q - zero_point) * scale per block) and onnx2torch turns the rest into a torch module. Its outputs equal
OpenCV dnn's on the same input to ~1e-6. `decode` is OpenCV's `FaceDetectorYN` post-processing (score =
sqrt(cls * obj), boxes and landmarks from the stride-8/16/32 grids, NMS), so rows come out as `FaceDetectorYN.detect`
gives them: `x, y, w, h`, 5 landmarks, score (tests/test_yunet_torch.py compares them on real photos).

On this project's 2-core CPU OpenCV's YuNet is the faster (81 ms against 147 ms in bf16 for a 1600x1200 photo), so
the CPU keeps it; this path is for CUDA devices. Needs `pip install 'lookalike[gpu]'` (onnx, onnx2torch).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from lookalike.errors import LookalikeError

STRIDES = (8, 16, 32)
#: A photo is zero-padded (bottom and right) to a multiple of this, as OpenCV pads it; photos of one padded size
#: share a network call. Padding further (to share calls between more sizes) moves large faces' scores: on a
#: 640x480 coarse pass padded to 512 rows a face's score fell from 0.81 to 0.72, so detections would depend on it.
BUCKET = 32
INSTALL_HINT = "pip install 'lookalike[gpu]' (onnx and onnx2torch)"


def folded_model(path: Path):
    """The YuNet ONNX graph with its quantized weights turned into float constants (an `onnx.ModelProto`)."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise LookalikeError(f"YuNet on a torch device needs onnx: {INSTALL_HINT}") from None
    model = onnx.load(str(path))
    g = model.graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    consts: dict[str, np.ndarray] = {}
    keep = []
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in init:
            q, s, z = (init[i].astype(np.float32) for i in n.input[:3])
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            axis, block = int(attrs.get("axis", 1)), int(attrs.get("block_size", 0))
            if block:  # one scale and zero point per `block` values along `axis`
                s = np.repeat(s, block, axis=axis)[tuple(slice(0, d) for d in q.shape)]
                z = np.repeat(z, block, axis=axis)[tuple(slice(0, d) for d in q.shape)]
            consts[n.output[0]] = (q - z) * s
        elif n.op_type == "Reshape" and n.input[0] in consts:
            consts[n.output[0]] = consts[n.input[0]].reshape(init[n.input[1]])
        else:
            keep.append(n)
    used = {i for n in keep for i in n.input}
    initializers = [i for i in g.initializer if i.name in used]
    initializers += [numpy_helper.from_array(v.astype(np.float32), k) for k, v in consts.items() if k in used]
    graph = helper.make_graph(keep, g.name, g.input, g.output, initializers)
    # What is left means the same at opset 13, the newest onnx2torch converts them at.
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    out.ir_version = model.ir_version
    return out


@cache
def _network(path: str, device: str):
    try:
        import onnx2torch
    except ImportError:
        raise LookalikeError(f"YuNet on a torch device needs onnx2torch: {INSTALL_HINT}") from None
    return onnx2torch.convert(folded_model(Path(path))).eval().to(device)


def decode(outputs: list[np.ndarray], pad_h: int, pad_w: int, score_threshold: float, nms_threshold: float,
           top_k: int) -> np.ndarray:  # fmt: skip
    """One image's network outputs (12 arrays: cls, obj, bbox, kps per stride, the graph's order) -> rows
    `(N, 15)` float32 as `cv2.FaceDetectorYN.detect` returns them, best first (OpenCV's postProcess and NMS)."""
    import torch
    from torchvision.ops import nms

    k = len(STRIDES)
    rows = []
    for i, s in enumerate(STRIDES):
        cols = pad_w // s
        cls, obj = np.clip(outputs[i].reshape(-1), 0, 1), np.clip(outputs[i + k].reshape(-1), 0, 1)
        bbox, kps = outputs[i + 2 * k].reshape(-1, 4), outputs[i + 3 * k].reshape(-1, 10)
        score = np.sqrt(cls * obj)
        idx = np.nonzero(score >= score_threshold)[0]
        if not len(idx):
            continue
        r, c = (idx // cols).astype(np.float32), (idx % cols).astype(np.float32)
        b = bbox[idx]
        w, h = np.exp(b[:, 2]) * s, np.exp(b[:, 3]) * s
        x1, y1 = (c + b[:, 0]) * s - w / 2, (r + b[:, 1]) * s - h / 2
        lm = kps[idx].reshape(-1, 5, 2)
        lm = np.stack([(lm[:, :, 0] + c[:, None]) * s, (lm[:, :, 1] + r[:, None]) * s], axis=2).reshape(-1, 10)
        rows.append(np.column_stack([x1, y1, w, h, lm, score[idx]]).astype(np.float32))
    if not rows:
        return np.zeros((0, 15), np.float32)
    faces = np.concatenate(rows)
    # OpenCV runs NMSBoxes on integer rectangles (x, y, w, h truncated)
    rect = np.trunc(faces[:, :4])
    corners = np.column_stack([rect[:, 0], rect[:, 1], rect[:, 0] + rect[:, 2], rect[:, 1] + rect[:, 3]])
    boxes = torch.from_numpy(corners)
    keep = nms(boxes, torch.from_numpy(faces[:, 14]), nms_threshold).numpy()[:top_k]
    return faces[keep]


class TorchYuNet:
    """YuNet over batches of BGR images on a torch device; `detect` returns `FaceDetectorYN.detect`'s rows."""

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
