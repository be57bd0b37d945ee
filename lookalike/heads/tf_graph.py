"""Read a frozen TensorFlow graph (`GraphDef`, a `.pb` file) with protobuf alone: nodes, their inputs and attributes,
and constant tensors as numpy arrays.

Why by hand: the messages ship with TensorFlow (2 GB) and tensorboard (a server and its dependencies), and
OpenCV 5.1 removed `cv2.dnn.readNetFromTensorflow`, which this project used before. protobuf itself is already
installed (onnx needs it), so the messages are declared here from TensorFlow's public `.proto` files
(`graph.proto`, `node_def.proto`, `attr_value.proto`, `tensor.proto`, `tensor_shape.proto`), with the same field
numbers, through protobuf's descriptor API. Only the fields a frozen graph's weights need are declared; protobuf
skips the others, so any GraphDef parses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.errors import LookalikeError

#: TensorFlow's DataType numbers (types.proto) for the constants a frozen graph holds.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 6: np.int8, 9: np.int64, 19: np.float16}
#: The repeated field a constant's values fall back to when it has no `tensor_content`, per dtype.
_VALUE_FIELD = {1: "float_val", 2: "double_val", 3: "int_val", 4: "int_val", 6: "int_val", 9: "int64_val",
                19: "half_val"}  # fmt: skip

# (message, [(field, number, type, repeated, message type)]) from TensorFlow's .proto files.
_SCHEMA: list[tuple[str, list[tuple[str, int, str, bool, str | None]]]] = [
    ("Dim", [("size", 1, "int64", False, None), ("name", 2, "string", False, None)]),
    ("TensorShapeProto", [("dim", 2, "message", True, "Dim"), ("unknown_rank", 3, "bool", False, None)]),
    ("TensorProto", [
        ("dtype", 1, "int32", False, None), ("tensor_shape", 2, "message", False, "TensorShapeProto"),
        ("tensor_content", 4, "bytes", False, None), ("float_val", 5, "float", True, None),
        ("double_val", 6, "double", True, None), ("int_val", 7, "int32", True, None),
        ("half_val", 13, "int32", True, None), ("int64_val", 10, "int64", True, None),
    ]),
    ("ListValue", [
        ("s", 2, "bytes", True, None), ("i", 3, "int64", True, None), ("f", 4, "float", True, None),
        ("b", 5, "bool", True, None),
    ]),
    ("AttrValue", [
        ("list", 1, "message", False, "ListValue"), ("s", 2, "bytes", False, None), ("i", 3, "int64", False, None),
        ("f", 4, "float", False, None), ("b", 5, "bool", False, None), ("type", 6, "int32", False, None),
        ("shape", 7, "message", False, "TensorShapeProto"), ("tensor", 8, "message", False, "TensorProto"),
    ]),
    ("NodeDef", [
        ("name", 1, "string", False, None), ("op", 2, "string", False, None), ("input", 3, "string", True, None),
        ("device", 4, "string", False, None), ("attr", 5, "message", True, "NodeDef.AttrEntry"),
    ]),
    ("GraphDef", [("node", 1, "message", True, "NodeDef")]),
]  # fmt: skip
_PACKAGE = "lookalike_tf"


@cache
def _graph_message() -> type:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    kinds = ("int64", "int32", "string", "bytes", "bool", "float", "double", "message")
    types = {k: getattr(F, f"TYPE_{k.upper()}") for k in kinds}
    fd = descriptor_pb2.FileDescriptorProto(name=f"{_PACKAGE}/graph.proto", package=_PACKAGE, syntax="proto3")

    def add_fields(msg: Any, fields: list) -> None:
        for name, number, kind, repeated, ref in fields:
            f = msg.field.add(name=name, number=number, type=types[kind])
            f.label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
            if ref:
                f.type_name = f".{_PACKAGE}.{ref}"

    for name, fields in _SCHEMA:
        msg = fd.message_type.add(name=name)
        add_fields(msg, fields)
        if name == "NodeDef":  # map<string, AttrValue> attr = 5, as protobuf spells a map on the wire
            entry = msg.nested_type.add(name="AttrEntry")
            add_fields(entry, [("key", 1, "string", False, None), ("value", 2, "message", False, "AttrValue")])
            entry.options.map_entry = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.GraphDef"))


@dataclass(frozen=True)
class Node:
    """One node of the graph: its op, its input node names (`:0` and control `^` marks removed) and attributes."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attr: Any  # the protobuf map of AttrValue

    def ints(self, key: str) -> list[int]:
        """A list-of-ints attribute (`strides`, `ksize`), empty when absent."""
        return list(self.attr[key].list.i) if key in self.attr else []

    def float(self, key: str, default: float) -> float:
        return float(self.attr[key].f) if key in self.attr else default

    def text(self, key: str) -> str:
        return self.attr[key].s.decode("utf-8", "replace") if key in self.attr else ""


class TFGraph:
    """A frozen GraphDef's nodes by name, who consumes each, and its constants as numpy arrays."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise LookalikeError(f"cannot read the TensorFlow graph {self.path}: {e.strerror or e}") from None
        graph = _graph_message()()
        try:
            graph.ParseFromString(data)
        except Exception as e:  # protobuf's DecodeError, or a RuntimeError from its C++ parser on deep garbage
            raise LookalikeError(f"{self.path} is not a TensorFlow graph ({type(e).__name__})") from None
        if not graph.node:
            raise LookalikeError(f"{self.path} holds no TensorFlow graph nodes")
        self.nodes: dict[str, Node] = {}
        self.consumers: dict[str, list[str]] = {}
        for n in graph.node:
            inputs = tuple(i.split(":")[0] for i in n.input if not i.startswith("^"))
            self.nodes[n.name] = Node(n.name, n.op, inputs, n.attr)
            for i in inputs:
                self.consumers.setdefault(i, []).append(n.name)

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise LookalikeError(f"the TensorFlow graph {self.path} has no node {name}") from None

    def consumer(self, name: str, op: str) -> Node:
        """The one node of type `op` that takes `name`'s output."""
        found = [self.nodes[c] for c in self.consumers.get(name, []) if self.nodes[c].op == op]
        if len(found) != 1:
            raise LookalikeError(f"the TensorFlow graph {self.path}: {len(found)} {op} nodes take {name}, expected 1")
        return found[0]

    def const(self, name: str) -> np.ndarray:
        """The value of Const node `name` (a numpy array in its shape), or a one-line error."""
        node = self.node(name)
        if node.op != "Const" or "value" not in node.attr:
            raise LookalikeError(f"node {name} of {self.path} is a {node.op}, not a constant")
        t = node.attr["value"].tensor
        dtype = _DTYPES.get(t.dtype)
        if dtype is None:
            raise LookalikeError(f"constant {name} of {self.path} has TensorFlow dtype {t.dtype}, not supported")
        shape = tuple(int(d.size) for d in t.tensor_shape.dim)
        count = int(np.prod(shape, dtype=np.int64))
        if t.tensor_content:
            flat = np.frombuffer(t.tensor_content, dtype=np.dtype(dtype).newbyteorder("<"))
        else:  # small constants list their values; one value stands for all (TensorFlow's own rule)
            values = list(getattr(t, _VALUE_FIELD[t.dtype]))
            if dtype is np.float16:
                flat = np.asarray(values, np.uint16).view(np.float16)
            else:
                flat = np.asarray(values, dtype)
            if len(flat) == 1 and count != 1:
                flat = np.full(count, flat[0], dtype)
        if flat.size != count:
            raise LookalikeError(f"constant {name} of {self.path} holds {flat.size} values for shape {shape}")
        return flat.astype(dtype, copy=False).reshape(shape)
