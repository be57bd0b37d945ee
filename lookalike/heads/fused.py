"""Fused heads: several registered heads as one, `fused:facenet-casia+sface+dlib`, optionally weighted
(`'fused:facenet-casia*2+dlib'`).

A fused head embeds each face with every part (each on its own crop, `lookalike.faces.align.crop_face` cuts them
side by side in one strip) and concatenates the parts' L2-normalised vectors, part i scaled by sqrt(w_i / sum w).
The result has unit norm, and the cosine of two fused vectors is the weighted mean of the parts' cosines:
    cos_fused(a, b) = sum_i w_i cos_i(a, b) / sum_i w_i
so FAISS's inner product ranks by the weighted agreement of the heads. The name (parts in order, weights other
than 1) is what an index's manifest records; its weights digest is the digest of the parts' digests, so an index
refuses a fused head whose parts changed.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lookalike.errors import LookalikeError
from lookalike.faces.align import FUSED_SEP, split_strip
from lookalike.heads.base import Head, HeadSpec
from lookalike.weights import WeightsSpec

PREFIX = "fused:"
_PART = re.compile(r"^([A-Za-z0-9_.:-]+?)(?:\*(\d+(?:\.\d+)?|\.\d+))?$")


def is_fused(name: str) -> bool:
    return name.startswith(PREFIX)


def parse(name: str) -> list[tuple[str, float]]:
    """`fused:a*2+b` -> `[("a", 2.0), ("b", 1.0)]`; a one-line error for a malformed name."""
    body = name[len(PREFIX) :]
    parts = []
    for token in body.split(FUSED_SEP):
        m = _PART.match(token.strip())
        if not m:
            raise LookalikeError(
                f"bad fused head {name!r}: write fused:HEAD+HEAD[+...], each optionally weighted as HEAD*2"
            )
        weight = float(m.group(2)) if m.group(2) else 1.0
        if not (weight > 0 and math.isfinite(weight)):
            raise LookalikeError(f"bad fused head {name!r}: weights must be positive")
        parts.append((m.group(1), weight))
    names = [p for p, _ in parts]
    if len(parts) < 2 or len(set(names)) != len(names):
        raise LookalikeError(f"bad fused head {name!r}: it needs two or more different heads")
    if any(is_fused(p) for p in names):
        raise LookalikeError(f"bad fused head {name!r}: a part cannot itself be fused")
    return parts


def canonical(parts: list[tuple[str, float]]) -> str:
    """The name a fused head is recorded under: parts in order, a weight written only when it is not 1."""
    return PREFIX + FUSED_SEP.join(p if w == 1 else f"{p}*{w:g}" for p, w in parts)


def fused_spec(name: str, part_spec: Callable[[str], HeadSpec]) -> HeadSpec:
    """The declaration of a fused head from its name; `part_spec` looks each part up in the registry."""
    parts = parse(name)
    specs = [part_spec(p) for p, _ in parts]
    return HeadSpec(
        name=canonical(parts),
        dim=sum(s.dim for s in specs),
        crop=FUSED_SEP.join(s.crop for s in specs),
        role="fused: " + ", ".join(f"{s.name} ({s.dim}-d, weight {w:g})" for s, (_, w) in zip(specs, parts)),
        weights=WeightsSpec(filename="", how_to_get="the weights of each part"),
        build=_no_build,
        preprocess_version=FUSED_SEP.join(s.preprocess_version for s in specs),
        parts=tuple(parts),
    )


def _no_build(spec: HeadSpec, path: Path, sha: str, device: str) -> Head:
    raise LookalikeError(f"head {spec.name!r} is built from its parts by lookalike.heads.create_head")


def combined_digest(parts: list[tuple[str, float]], digests: list[str]) -> str:
    """The weights digest of a fused head: sha256 over each part's name, weight and weights digest."""
    text = "\n".join(f"{p}*{w:g}={d}" for (p, w), d in zip(parts, digests, strict=True))
    return hashlib.sha256(text.encode()).hexdigest()


class FusedHead(Head):
    """The parts' heads, built; `embed` concatenates their weighted unit vectors."""

    engine = "parts"  # each part runs on its own engine

    def __init__(self, spec: HeadSpec, heads: list[Head]) -> None:
        digest = combined_digest(list(spec.parts), [h.weights_sha256 for h in heads])
        super().__init__(spec, digest, heads[0].device)
        self.heads = heads
        total = sum(w for _, w in spec.parts)
        self.scales = [math.sqrt(w / total) for _, w in spec.parts]
        # a part that computes on one core (dlib) sets the pace: the workers then embed, each with all the parts,
        # when all of them run on the CPU anyway
        self.embeds_in_workers = any(h.embeds_in_workers for h in heads) and all(
            str(h.device).startswith("cpu") for h in heads
        )

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        tiles = split_strip(crops, self.crop)
        return np.concatenate([h.embed(t) * s for h, t, s in zip(self.heads, tiles, self.scales, strict=True)], axis=1)
