"""What a head is: a declaration (crop, dimension, weights) and an embedder built from it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.weights import WeightsSpec


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
    """

    name: str
    dim: int
    crop: str
    role: str
    weights: WeightsSpec
    build: Callable[[HeadSpec, Path, str, str], Head] = field(repr=False)
    similarity: str = "cosine"
    preprocess_version: str = "1"


class Head(ABC):
    """An embedder with its crop: `embed((N, S, S, 3) uint8 RGB crops) -> (N, dim) float32, L2-normalised`."""

    def __init__(self, spec: HeadSpec, weights_sha256: str, device: str) -> None:
        self.spec = spec
        self.weights_sha256 = weights_sha256
        self.device = device

    @property
    def name(self) -> str:
        return self.spec.name

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
        """crops `(N, S, S, 3) uint8 RGB` -> `(N, dim) float32`, each row L2-normalised."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._forward(crops[i : i + batch_size]) for i in range(0, len(crops), batch_size)]
        out = np.concatenate(parts).astype(np.float32, copy=False)
        return normalize(out)


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
