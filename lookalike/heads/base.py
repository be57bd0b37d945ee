"""What a head is: a declaration (crop, dimension, weights) and an embedder built from it."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.weights import WeightsSpec

#: What a head can do beyond `embed`, declared in its spec's `abilities` (`Head.can`), never found by probing.
TEXT = "text"  # `embed_text(texts) -> (N, dim)`: faces found by a description (CLIP)
FEATURE_MAPS = "feature-maps"  # `embed_with_maps(crops) -> (vectors, maps)`: seed 000's PCAMs and learned metric


@dataclass(frozen=True)
class HeadSpec:
    """A registered head.

    name: registry key (`--head NAME`).
    dim: embedding size.
    crop: the `lookalike.faces.align.CROPS` key the network was trained on.
    role: one line for `lookalike heads`.
    weights: the file it needs.
    build: `(spec, weights_path, weights_sha256, device) -> Head`.
    similarity: how two embeddings compare; every head here returns L2-normalised vectors for cosine.
    preprocess_version: the version of how a crop becomes the network's input; it changes when the same weights would
        give other vectors (an index records it and refuses another), e.g. sface's colour order in version 2.
    parts: a fused head's `(head name, weight)` parts (`lookalike.heads.fused`); empty for a network of its own.
    abilities: what it can do beyond `embed` (`TEXT`, `FEATURE_MAPS`).
    """

    name: str
    dim: int
    crop: str
    role: str
    weights: WeightsSpec
    build: Callable[[HeadSpec, Path, str, str], Head] = field(repr=False)
    similarity: str = "cosine"
    preprocess_version: str = "1"
    parts: tuple[tuple[str, float], ...] = ()
    abilities: frozenset[str] = frozenset()


class Head(ABC):
    """An embedder with its crop: `embed((N, S, S, 3) uint8 RGB crops) -> (N, dim) float32, L2-normalised`."""

    #: "fp32", or "bf16": a torch head runs its network under bf16 autocast (`inference`); `create_head` picks it
    #: where the device does bf16 natively (measured on FaceNet: vectors at cosine >= 0.9998 to fp32, 2.2x faster
    #: on a CPU with AVX512-BF16; benchmarks/ingest.md).
    precision = "fp32"

    #: True for a network that computes on one core and holds the GIL while it does (dlib): indexing then embeds in
    #: the worker processes that find the faces, one network each, instead of one after another in the caller.
    embeds_in_workers = False

    #: What computes the network: "torch" (precision, padding and the torch device apply), or another runtime
    #: ("onnxruntime", "opencv", "dlib") that they do not.
    engine = "torch"

    def __init__(self, spec: HeadSpec, weights_sha256: str, device: str) -> None:
        self.spec = spec
        self.weights_sha256 = weights_sha256
        self.device = device

    def inference(self) -> contextlib.ExitStack:
        """The context a torch head runs its network in: inference mode, and bf16 autocast with `precision` bf16."""
        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.precision == "bf16":
            stack.enter_context(torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16))
        return stack

    @property
    def name(self) -> str:
        return self.spec.name

    def can(self, ability: str) -> bool:
        """Whether the head declares `ability` (`TEXT`, `FEATURE_MAPS`)."""
        return ability in self.spec.abilities

    @property
    def preprocess_version(self) -> str:
        return self.spec.preprocess_version

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def crop(self) -> str:
        return self.spec.crop

    @abstractmethod
    def _forward(self, crops: np.ndarray) -> np.ndarray:
        """Raw embeddings `(N, dim)` for a batch of crops."""

    def embed(self, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """crops `(N, S, S, 3) uint8 RGB` -> `(N, dim) float32`, each row L2-normalised.

        On a CUDA device a batch is padded up to a power of two (at least 8, at most `batch_size`): each new batch
        shape costs the GPU new convolution plans, and an index run's batches come in every size (measured on an
        H100, 60 batches of 20-60 FaceNet crops: 75 ms a batch while sizes are new, 14 ms once seen; padded 16 ms
        throughout, 2.8x less in all; benchmarks/ingest-gpu.md). Padding rows are zeros and are dropped; in eval
        mode no row depends on another.
        """
        if len(crops) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        pad = self.pads_batches()
        parts = []
        for i in range(0, len(crops), batch_size):
            part = crops[i : i + batch_size]
            n = len(part)
            if pad and n < batch_size:
                bucket = min(batch_size, max(8, 1 << (n - 1).bit_length()))
                part = np.concatenate([part, np.zeros((bucket - n, *part.shape[1:]), part.dtype)])
            parts.append(self._forward(part)[:n])
        out = np.concatenate(parts).astype(np.float32, copy=False)
        return normalize(out)

    def pads_batches(self) -> bool:
        """Whether `embed` pads batches to a few sizes: a torch network on a CUDA device."""
        return self.engine == "torch" and str(self.device).startswith("cuda")


def load_state_file(path: Path, how_to_get: str) -> dict:
    """A torch state dict from `path` (CPU); a truncated or foreign file is a one-line error, not a pickle trace."""
    import torch

    from lookalike.errors import WeightsMismatchError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsMismatchError(
            f"weights file {path} is not a torch state dict ({type(e).__name__}): {how_to_get}"
        ) from None


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32, copy=False)


def fast_bf16(device: str) -> bool:
    """Whether `device` computes bf16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or AMX
    (elsewhere bf16 is emulated and slower than fp32). Asks torch only about a CUDA device."""
    kind = str(device or "cpu").split(":", 1)[0]
    if kind == "cuda":
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
