"""The head registry: `create_head(name)` is the one way to get an embedder.

A head is a small declaration (`HeadSpec`: crop, dimension, weights) registered here; tests loop over
`list_heads()`, so a new head is tested by being registered.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lookalike import config, optional
from lookalike.errors import LookalikeError, WeightsMismatchError, WeightsMissingError, one_line
from lookalike.heads import arcface, clip, dinov2, dlib_resnet, facenet, fused, sface, trained
from lookalike.heads.base import Head, HeadSpec, fast_bf16, normalize
from lookalike.registry import Registry
from lookalike.weights import resolve

_REGISTRY: Registry[HeadSpec] = Registry("head")

#: The head `index` uses when none is named (chosen by measurement: see README and benchmarks/).
DEFAULT_HEAD = "facenet-casia"


def register_head(spec: HeadSpec) -> HeadSpec:
    """Add a head to the registry (names are unique)."""
    return _REGISTRY.register(spec.name, spec)


def list_heads() -> list[str]:
    """Registered head names, and the trained heads found in the weights directory, sorted."""
    return sorted(set(_REGISTRY) | set(trained.discover()))


def get_head_spec(name: str, weights_dir: Path | None = None) -> HeadSpec:
    """The declaration of a head (`fused:A+B` too), or a one-line error listing the known ones."""
    if fused.is_fused(name):
        return fused.fused_spec(name, lambda part: get_head_spec(part, weights_dir))
    try:
        return _REGISTRY[name]
    except KeyError:
        spec = trained.spec_for(name, weights_dir)  # `lookalike:NAME` / `perface:NAME`, made by `lookalike train`
        if spec is not None:
            return spec
        return _REGISTRY.lookup(name, known=list_heads())


def create_head(
    name: str, device: str | None = None, weights_dir: Path | None = None, precision: str | None = None
) -> Head:
    """Build a head with verified weights. Raises WeightsMissingError naming the file and how to get it.

    precision: "fp32", "bf16", or "auto" (bf16 for a torch head on a device that computes it natively);
    default $LOOKALIKE_PRECISION, else auto.
    """
    config.check_device(device)
    spec = get_head_spec(name, weights_dir)
    if spec.parts:
        return fused.FusedHead(spec, [create_head(p, device, weights_dir, precision) for p, _ in spec.parts])
    try:
        path, sha = _resolve(spec, name, weights_dir)
    except WeightsMissingError:
        # facenet-casia's weights are made locally from an installed package: do it once, no network.
        if name != facenet.CASIA.name or not facenet.casia_source_available():
            raise
        made = facenet.import_casia(weights_dir)
        print(f"made {made.name} for head {name!r}", file=sys.stderr)
        path, sha = _resolve(spec, name, weights_dir)
    try:
        head = spec.build(spec, path, sha, device or "")
    except LookalikeError:
        raise
    except ImportError as e:  # an optional dependency the head needs (torch, open_clip, timm, dlib): which extra
        words = optional.missing_words(e)
        if words is None:
            raise WeightsMismatchError(f"head {name!r} cannot load its weights {path}: {one_line(e)}") from e
        raise LookalikeError(f"head {name!r} needs {words}") from None
    except Exception as e:  # a dependency that changed under us: one line naming the file, not a traceback
        raise WeightsMismatchError(f"head {name!r} cannot load its weights {path}: {one_line(e)}") from e
    precision = precision or config.precision()
    if precision not in ("auto", "fp32", "bf16"):
        raise LookalikeError(f"unknown precision {precision!r}: auto, fp32 or bf16")
    if precision == "bf16" and isinstance(head, facenet.FaceNetHead) and head.engine == "onnxruntime":
        head.use_torch()  # bf16 asked for by name: torch computes it, onnxruntime's CPU graph is fp32
    if head.engine == "torch" and precision != "fp32":  # not sface (OpenCV, int8), nor FaceNet in onnxruntime
        head.precision = "bf16" if precision == "bf16" or fast_bf16(head.device) else "fp32"
    return head


def weights_digest(name: str, weights_dir: Path | None = None) -> str:
    """The weights digest an index records for head `name` (a fused head's combines its parts'), without building
    the network; a one-line error when a file is missing."""
    spec = get_head_spec(name, weights_dir)
    if spec.parts:
        return fused.combined_digest(list(spec.parts), [weights_digest(p, weights_dir) for p, _ in spec.parts])
    return _resolve(spec, name, weights_dir)[1]


def _resolve(spec: HeadSpec, name: str, weights_dir: Path | None) -> tuple[Path, str]:
    """A head's verified weights `(path, sha256)`; facenet-casia's may be its onnxruntime graph alone where torch
    is not installed (`facenet.resolve_casia`)."""
    if name == facenet.CASIA.name:
        return facenet.resolve_casia(spec, weights_dir)
    return resolve(spec.weights, name, weights_dir)


for _spec in (
    sface.SPEC,
    facenet.CASIA,
    facenet.VGGFACE2,
    dinov2.SPEC,
    arcface.SPEC,
    dlib_resnet.SPEC,
    clip.SPEC,
):
    register_head(_spec)

__all__ = [
    "DEFAULT_HEAD",
    "Head",
    "HeadSpec",
    "create_head",
    "get_head_spec",
    "list_heads",
    "normalize",
    "weights_digest",
]
