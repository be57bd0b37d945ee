"""FaceNet (Inception-ResNet-v1) as an ONNX graph, built from its state dict with numpy and onnx alone, for
onnxruntime on a CPU.

Why: on a CPU without native bf16 (AVX2 only: most laptops and many servers) torch runs this network in fp32, slower
than onnxruntime on the same graph (1.22-1.40x on a 2-core AVX2 EPYC: benchmarks/facenet-engines.md), and onnxruntime
needs no torch at query time. The graph is written here node by
node from facenet-pytorch's layout (`lookalike.heads.inception_resnet_v1`), not exported from torch, so it needs no
torch and no exporter; each conv's batch norm is folded into it, and the bottleneck's into the last linear layer,
as `facenet.fold_batchnorm` does for torch. Input: `(N, 3, 160, 160)` float32 scaled as `(x - 127.5) / 128`;
output: `(N, 512)` L2-normalised. The test holds its vectors to torch's (cosine >= 0.99999 on real faces).
"""

from __future__ import annotations

import numpy as np

#: The torch network's batch-norm eps (facenet-pytorch's, FaceNet's own).
BN_EPS = 1e-3
#: The residual scale of each block type (facenet-pytorch's `Block35(scale=0.17)`, ...; the TF graph agrees).
SCALE_35, SCALE_17, SCALE_8, SCALE_LAST = 0.17, 0.10, 0.20, 1.0
OPSET = 17


class _Graph:
    """Nodes and weights of an ONNX graph being written."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        skip = "num_batches_tracked"
        self.state = {k: np.asarray(v, dtype=np.float32) for k, v in state.items() if not k.endswith(skip)}
        self.nodes: list = []
        self.weights: list = []
        self._n = 0

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper

        name = self._name(hint)
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def op(self, kind: str, inputs: list[str], hint: str = "", **attrs) -> str:
        from onnx import helper

        out = self._name(hint or kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def conv(self, x: str, prefix: str, stride: int = 1, pad: tuple[int, int] | None = None, relu: bool = True) -> str:
        """A `BasicConv2d` (conv + its batch norm folded, ReLU), or a plain conv with bias when `relu` is False
        and the state has `prefix.bias`. pad: (height, width); None: keep the size (stride 1)."""
        s = self.state
        if f"{prefix}.conv.weight" in s:
            w = s[f"{prefix}.conv.weight"]
            scale = s[f"{prefix}.bn.weight"] / np.sqrt(s[f"{prefix}.bn.running_var"] + BN_EPS)
            b = s[f"{prefix}.bn.bias"] - s[f"{prefix}.bn.running_mean"] * scale
            w = w * scale[:, None, None, None]
        else:
            w, b = s[f"{prefix}.weight"], s[f"{prefix}.bias"]
        kh, kw = w.shape[2:]
        ph, pw = ((kh - 1) // 2, (kw - 1) // 2) if pad is None else pad
        y = self.op("Conv", [x, self.const(w, f"{prefix}.w"), self.const(b, f"{prefix}.b")], prefix,
                    kernel_shape=[kh, kw], strides=[stride, stride], pads=[ph, pw, ph, pw])  # fmt: skip
        return self.op("Relu", [y]) if relu else y

    def maxpool(self, x: str) -> str:
        return self.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])

    def cat(self, xs: list[str]) -> str:
        return self.op("Concat", xs, axis=1)

    def residual(self, x: str, up: str, scale: float, relu: bool = True) -> str:
        y = self.op("Add", [self.op("Mul", [up, self.const(np.array(scale, np.float32), "scale")]), x])
        return self.op("Relu", [y]) if relu else y


def _block35(g: _Graph, x: str, p: str) -> str:
    b0 = g.conv(x, f"{p}.branch0")
    b1 = g.conv(g.conv(x, f"{p}.branch1.0"), f"{p}.branch1.1")
    b2 = g.conv(g.conv(g.conv(x, f"{p}.branch2.0"), f"{p}.branch2.1"), f"{p}.branch2.2")
    return g.residual(x, g.conv(g.cat([b0, b1, b2]), f"{p}.conv2d", relu=False), SCALE_35)


def _block17(g: _Graph, x: str, p: str) -> str:
    b0 = g.conv(x, f"{p}.branch0")
    b1 = g.conv(g.conv(g.conv(x, f"{p}.branch1.0"), f"{p}.branch1.1"), f"{p}.branch1.2")
    return g.residual(x, g.conv(g.cat([b0, b1]), f"{p}.conv2d", relu=False), SCALE_17)


def _block8(g: _Graph, x: str, p: str, scale: float = SCALE_8, relu: bool = True) -> str:
    b0 = g.conv(x, f"{p}.branch0")
    b1 = g.conv(g.conv(g.conv(x, f"{p}.branch1.0"), f"{p}.branch1.1"), f"{p}.branch1.2")
    return g.residual(x, g.conv(g.cat([b0, b1]), f"{p}.conv2d", relu=False), scale, relu)


def build_model(state: dict, repeats: tuple[int, int, int] = (5, 10, 5)):
    """The ONNX model of Inception-ResNet-v1 with `state` (facenet-pytorch's state dict, numpy or torch values)."""
    from onnx import TensorProto, checker, helper

    g = _Graph({k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in state.items()})
    x = "faces"
    x = g.conv(x, "conv2d_1a", stride=2, pad=(0, 0))
    x = g.conv(x, "conv2d_2a", pad=(0, 0))
    x = g.conv(x, "conv2d_2b")
    x = g.maxpool(x)
    x = g.conv(x, "conv2d_3b")
    x = g.conv(x, "conv2d_4a", pad=(0, 0))
    x = g.conv(x, "conv2d_4b", stride=2, pad=(0, 0))
    for i in range(repeats[0]):
        x = _block35(g, x, f"repeat_1.{i}")
    b0 = g.conv(x, "mixed_6a.branch0", stride=2, pad=(0, 0))
    b1 = g.conv(g.conv(g.conv(x, "mixed_6a.branch1.0"), "mixed_6a.branch1.1"), "mixed_6a.branch1.2", 2, (0, 0))
    x = g.cat([b0, b1, g.maxpool(x)])
    for i in range(repeats[1]):
        x = _block17(g, x, f"repeat_2.{i}")
    b0 = g.conv(g.conv(x, "mixed_7a.branch0.0"), "mixed_7a.branch0.1", 2, (0, 0))
    b1 = g.conv(g.conv(x, "mixed_7a.branch1.0"), "mixed_7a.branch1.1", 2, (0, 0))
    b2 = g.conv(g.conv(g.conv(x, "mixed_7a.branch2.0"), "mixed_7a.branch2.1"), "mixed_7a.branch2.2", 2, (0, 0))
    x = g.cat([b0, b1, b2, g.maxpool(x)])
    for i in range(repeats[2]):
        x = _block8(g, x, f"repeat_3.{i}")
    x = _block8(g, x, "block8", SCALE_LAST, relu=False)
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    s = g.state  # the bottleneck's batch norm folded into the linear layer
    scale = s["last_bn.weight"] / np.sqrt(s["last_bn.running_var"] + BN_EPS)
    w = s["last_linear.weight"] * scale[:, None]
    b = s["last_bn.bias"] - s["last_bn.running_mean"] * scale
    x = g.op("Gemm", [x, g.const(w, "last_linear.w"), g.const(b, "last_linear.b")], transB=1)
    out = g.op("LpNormalization", [x], "embedding", axis=1, p=2)
    graph = helper.make_graph(
        g.nodes, "facenet_inception_resnet_v1",
        [helper.make_tensor_value_info("faces", TensorProto.FLOAT, ["n", 3, 160, 160])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["n", 512])],
        initializer=g.weights,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lookalike")
    model.ir_version = 8  # what onnxruntime 1.17+ reads
    checker.check_model(model)
    return model


class OrtFaceNet:
    """The graph in an onnxruntime CPU session: `run((N, 3, 160, 160) float32) -> (N, 512)`."""

    def __init__(self, model_bytes: bytes, threads: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(x, dtype=np.float32)})[0]
