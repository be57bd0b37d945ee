"""DINOv2 ViT-S/14 (384-d CLS token), the general image embedder seed 003 uses for de-duplication and ViSE
mining, run through timm's `vit_small_patch14_dinov2` on the 224x224 CCA crop with ImageNet mean/std.

Weights: Meta's `dinov2_vits14_pretrain.pth` (the torch hub file; timm's own `state_dict` layout is also
accepted) in the weights directory. The original 518-pixel position embedding is resampled to 224 (16x16
patches) at load time by timm's checkpoint filter. Needs the optional extra: `pip install lookalike[dinov2]`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike.errors import LookalikeError, WeightsMissingError
from lookalike.heads.base import Head, HeadSpec, load_state_file
from lookalike.heads.facenet import _torch_device
from lookalike.weights import WeightsSpec

DINOV2_FILE = "dinov2_vits14_pretrain.pth"
IMAGE_SIZE = 224
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def build_vit(state_dict: dict | None = None):
    """timm's ViT-S/14 DINOv2 at 224 px with no classifier (forward -> CLS token after the final norm).

    `state_dict`: Meta's original checkpoint or a timm one; raises WeightsMissingError when it does not fit.
    """
    try:
        import timm
        from timm.models.vision_transformer import checkpoint_filter_fn
    except ImportError:
        raise LookalikeError(
            "head 'dinov2' needs timm: pip install 'lookalike[dinov2]' (or pip install timm)"
        ) from None
    net = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, img_size=IMAGE_SIZE)
    if state_dict is not None:
        state_dict = checkpoint_filter_fn(dict(state_dict), net)
        missing, unexpected = net.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise WeightsMissingError(
                f"weights do not fit ViT-S/14 DINOv2: missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}"
            )
    return net.eval()


class DinoV2Head(Head):
    def __init__(self, spec: HeadSpec, path: Path, sha: str, device: str) -> None:

        super().__init__(spec, sha, _torch_device(device))
        state = load_state_file(path, spec.weights.how_to_get)
        self.net = build_vit(state).to(self.device)

    def preprocess(self, crops: np.ndarray):
        """`(N, 224, 224, 3) uint8 RGB` -> `(N, 3, 224, 224) float32` tensor, ImageNet-normalised."""
        import torch

        x = (np.asarray(crops, np.float32) / 255.0 - MEAN) / STD
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(self.device)

    def _forward(self, crops: np.ndarray) -> np.ndarray:

        with self.inference():
            return self.net(self.preprocess(crops)).float().cpu().numpy()


SPEC = HeadSpec(
    name="dinov2",
    dim=384,
    crop="cca224",
    role="general image embedding, DINOv2 ViT-S/14 CLS (seed 003): de-duplication and ViSE mining",
    weights=WeightsSpec(
        filename=DINOV2_FILE,
        url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",
        how_to_get=f"run `lookalike weights fetch dinov2` on a machine with internet, or copy Meta's {DINOV2_FILE} "
        "(torch hub facebookresearch/dinov2, dinov2_vits14) into the weights directory; needs "
        "pip install 'lookalike[dinov2]'",
    ),
    build=DinoV2Head,
)
