"""The yunet detector's network outside OpenCV: its ONNX graph as plain floats, and OpenCV's decoding of its outputs.

`FaceDetectorYN` runs the int8bq file in OpenCV's dnn engine; the same graph runs faster in onnxruntime on a CPU
(`yunet_ort`) and in batches on a GPU through torch (`yunet_torch`). Both need the file as a float graph: its
weights are blockwise `DequantizeLinear` constants (w = (q - zero_point) * scale per block) that `folded_model`
turns into float initializers, leaving 53 Conv, Relu, MaxPool, nearest Resize, Sigmoid, Add, Transpose and Reshape
nodes; `dynamic=True` also frees the input's fixed 640x640 size. `decode` is OpenCV's `FaceDetectorYN`
post-processing (score = sqrt(cls * obj), boxes and landmarks from the stride-8/16/32 grids, `cv2.dnn.NMSBoxes` on
integer rectangles), so rows come out as `FaceDetectorYN.detect` gives them: `x, y, w, h`, 5 landmarks, score.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lookalike.errors import LookalikeError

STRIDES = (8, 16, 32)
#: OpenCV pads a photo (bottom and right, zeros) to a multiple of this before the network.
PAD = 32


def padded_size(h: int, w: int) -> tuple[int, int]:
    """The network's input size for an image of `h x w` (OpenCV's padding)."""
    return -(-h // PAD) * PAD, -(-w // PAD) * PAD


def folded_model(path: Path, dynamic: bool = False, hint: str = "pip install onnx"):
    """The YuNet ONNX graph with its quantized weights turned into float constants (an `onnx.ModelProto`);
    `dynamic`: any input height and width (the file fixes 640x640; its Reshapes use -1, so nothing else changes)."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise LookalikeError(f"the yunet graph outside OpenCV needs onnx: {hint}") from None
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
    inputs, outputs = list(g.input), list(g.output)
    if dynamic:
        inputs = [helper.make_tensor_value_info(i.name, onnx.TensorProto.FLOAT, [1, 3, "height", "width"])
                  for i in g.input]  # fmt: skip
        outputs = [helper.make_tensor_value_info(o.name, o.type.tensor_type.elem_type,
                                                 [1, f"{o.name}_rows", o.type.tensor_type.shape.dim[-1].dim_value])
                   for o in g.output]  # fmt: skip
    graph = helper.make_graph(keep, g.name, inputs, outputs, initializers)
    # What is left means the same at opset 13, the newest onnx2torch converts them at.
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    out.ir_version = model.ir_version
    return out


def decode(outputs: list[np.ndarray], pad_h: int, pad_w: int, score_threshold: float, nms_threshold: float,
           top_k: int) -> np.ndarray:  # fmt: skip
    """One image's network outputs (12 arrays: cls, obj, bbox, kps per stride, the graph's order) -> rows
    `(N, 15)` float32 as `cv2.FaceDetectorYN.detect` returns them, best first (OpenCV's postProcess and NMS)."""
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
    # OpenCV's own call: NMSBoxes on integer rectangles (x, y, w, h truncated), best score first, at most top_k
    rects = np.trunc(faces[:, :4]).astype(np.int32).tolist()
    keep = cv2.dnn.NMSBoxes(rects, faces[:, 14].tolist(), score_threshold, nms_threshold, 1.0, top_k)
    return faces[np.asarray(keep, np.int64).reshape(-1)]
