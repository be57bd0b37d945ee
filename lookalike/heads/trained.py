"""Heads made by `lookalike train`: named `<kind>:<name>` (e.g. `lookalike:doppel`), weights file
`trained/<kind>-<name>.pt` in the weights directory, verified against the sha256 recorded beside it.

The file holds the trained top (lookalike/similarity/train.py) and names its base head (facenet-casia, or arcface-r50;
the record beside it says which, so the crop is known before loading), whose backbone it runs on; the
feature maps (`embed_with_maps`) are the base backbone's, so `--rerank metric` works with it too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from lookalike import config
from lookalike.errors import LookalikeError, WeightsMismatchError
from lookalike.heads.arcface import ArcFaceHead, build_iresnet50
from lookalike.heads.base import FEATURE_MAPS, HeadSpec, load_state_file
from lookalike.heads.facenet import FaceNetHead, _torch_device, build_backbone, forward_with_taps
from lookalike.weights import WeightsSpec, resolve

KINDS = ("lookalike", "perface")
_NAME = re.compile(r"^(lookalike|perface):([A-Za-z0-9_.-]+)$")


def trained_path(kind: str, name: str, weights_dir: Path) -> Path:
    """Where a trained head's weights live."""
    return weights_dir / "trained" / f"{kind}-{name}.pt"


def base_of(kind: str, name: str, weights_dir: Path | None = None) -> str:
    """The base head a trained head runs on, from the record `lookalike train` wrote beside its weights."""
    record = trained_path(kind, name, weights_dir or config.weights_dir()).with_suffix(".pt.json")
    try:
        return str(json.loads(record.read_text()).get("base_head") or "facenet-casia")
    except (OSError, ValueError):
        return "facenet-casia"


def spec_for(head_name: str, weights_dir: Path | None = None) -> HeadSpec | None:
    """The declaration of a trained head from its name, or None when the name is not `<kind>:<name>`."""
    m = _NAME.match(head_name)
    if not m:
        return None
    kind, name = m.groups()
    base = base_of(kind, name, weights_dir)
    arc = base == "arcface-r50"
    return HeadSpec(
        name=head_name,
        dim=512,
        crop="arcface112" if arc else "facenet160",
        role=f"{kind} head trained by `lookalike train {kind}` on the {base} backbone",
        weights=WeightsSpec(
            filename=f"trained/{kind}-{name}.pt",
            how_to_get=f"train it: `lookalike train {kind} --triplets FILE --name {name}`",
        ),
        build=TrainedArcFaceHead if arc else TrainedHead,
        abilities=frozenset({FEATURE_MAPS}),
    )


def discover(weights_dir: Path | None = None) -> list[str]:
    """Names of the trained heads present in the weights directory."""
    d = (weights_dir or config.weights_dir()) / "trained"
    out = []
    for p in sorted(d.glob("*.pt")) if d.is_dir() else []:
        kind, _, name = p.stem.partition("-")
        if kind in KINDS and name and _NAME.match(f"{kind}:{name}"):
            out.append(f"{kind}:{name}")
    return out


def _load(spec: HeadSpec, path: Path):
    """`(payload, base backbone's state dict)` of a trained head file, checked against its base head's weights."""
    import torch

    from lookalike.heads import get_head_spec

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsMismatchError(f"{path} is not a trained head file ({type(e).__name__})") from None
    base_spec = get_head_spec(payload["base_head"])
    base_path, base_sha = resolve(base_spec.weights, base_spec.name, path.parent.parent)
    if base_sha != payload["base_weights_sha256"]:
        raise LookalikeError(f"{path} was trained on other {payload['base_head']} weights than {base_path}")
    return payload, load_state_file(base_path, base_spec.weights.how_to_get)


class TrainedHead(FaceNetHead):
    """The base FaceNet backbone (frozen) with a trained top."""

    def __init__(self, spec: HeadSpec, path: Path, sha: str, device: str) -> None:

        from lookalike.heads.tops import make_top

        payload, base_state = _load(spec, path)
        super(FaceNetHead, self).__init__(spec, sha, _torch_device(device))
        self.net = build_backbone(base_state).to(self.device)
        self.top = make_top(self.net, payload["kind"], payload["hierarchical"], payload["tap_channels"])
        self.top.load_state_dict(payload["state"])
        self.top.to(self.device).eval()
        self.hierarchical = bool(payload["hierarchical"])

    def _forward(self, crops: np.ndarray) -> np.ndarray:

        from lookalike.heads.tops import HIER_TAPS

        with self.inference():
            _, t = forward_with_taps(self.net, self.preprocess(crops), HIER_TAPS + ("block8",))
            taps = [t[k].mean((2, 3)) for k in HIER_TAPS] if self.hierarchical else None
            return self.top(t["block8"].mean((2, 3)), taps).float().cpu().numpy()


class TrainedArcFaceHead(ArcFaceHead):
    """The ArcFace R50 backbone (frozen) with a trained top over its last stage's map."""

    def __init__(self, spec: HeadSpec, path: Path, sha: str, device: str) -> None:

        from lookalike.heads.tops import make_top

        payload, base_state = _load(spec, path)
        super(ArcFaceHead, self).__init__(spec, sha, _torch_device(device))
        self.net = build_iresnet50(base_state).to(self.device)
        self.top = make_top(self.net, payload["kind"], False)
        self.top.load_state_dict(payload["state"])
        self.top.to(self.device).eval()

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        import torch

        with self.inference():
            _, fmap = self.net.forward_with_map(self.preprocess(crops))
            return self.top(torch.flatten(fmap, 1)).float().cpu().numpy()
