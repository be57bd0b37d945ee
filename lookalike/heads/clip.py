"""CLIP ViT-B/32 (OpenCLIP, LAION-2B, 512-d), a general image embedder like dinov2 for de-duplication and ViSE
mining, that also embeds text: `lookalike query --text "a man with a grey beard"` on a CLIP index.

Built by open_clip's own factory (`create_model_and_transforms("ViT-B-32", pretrained=<local file>)`, which loads
the checkpoint strictly) and fed through the transforms it returns (bicubic resize, centre crop, CLIP's mean/std)
on the 224 px CCA crop, as SPEC section 2 says. The tokenizer ships in the open_clip wheel. Weights: the
published `open_clip_model.safetensors` of laion/CLIP-ViT-B-32-laion2B-s34B-b79K, saved in the weights directory
as `CLIP_FILE`. Needs the optional extra: `pip install 'lookalike[clip]'`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike.errors import LookalikeError, WeightsMismatchError
from lookalike.heads.base import TEXT, Head, HeadSpec, normalize
from lookalike.heads.facenet import _torch_device
from lookalike.weights import WeightsSpec

MODEL = "ViT-B-32"
TAG = "laion2b_s34b_b79k"
CLIP_FILE = "open_clip_ViT-B-32_laion2b_s34b_b79k.safetensors"
INSTALL_HINT = "pip install 'lookalike[clip]' (or pip install open_clip_torch)"


def import_open_clip():
    """The open_clip module, or a one-line error saying what to install."""
    try:
        import open_clip
    except ImportError:
        raise LookalikeError(f"head 'clip' needs open_clip: {INSTALL_HINT}") from None
    return open_clip


class ClipHead(Head):
    def __init__(self, spec: HeadSpec, path: Path, sha: str, device: str) -> None:
        open_clip = import_open_clip()
        super().__init__(spec, sha, _torch_device(device))
        try:
            net, _, self.transform = open_clip.create_model_and_transforms(MODEL, pretrained=str(path))
        except Exception as e:  # a foreign or damaged file fails in many ways (safetensors, pickle, shapes)
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise WeightsMismatchError(
                f"weights file {path} does not load into OpenCLIP {MODEL} ({first}): {spec.weights.how_to_get}"
            ) from None
        self.net = net.to(self.device).eval()
        self.tokenizer = open_clip.get_tokenizer(MODEL)

    def preprocess(self, crops: np.ndarray):
        """`(N, S, S, 3) uint8 RGB` -> `(N, 3, 224, 224)` tensor through open_clip's own transforms."""
        import torch
        from PIL import Image

        return torch.stack([self.transform(Image.fromarray(np.asarray(c, np.uint8))) for c in crops]).to(self.device)

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        with self.inference():
            return self.net.encode_image(self.preprocess(crops)).float().cpu().numpy()

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Texts -> `(N, 512) float32`, L2-normalised, in the image vectors' space (cosine = CLIP similarity)."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self.inference():
            out = self.net.encode_text(self.tokenizer(list(texts)).to(self.device)).float().cpu().numpy()
        return normalize(out)


SPEC = HeadSpec(
    name="clip",
    dim=512,
    crop="cca224",
    role="general image and text embedding, OpenCLIP ViT-B/32 LAION-2B: de-duplication, ViSE mining, --text queries",
    weights=WeightsSpec(
        filename=CLIP_FILE,
        url="https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/main/open_clip_model.safetensors",
        how_to_get=f"run `lookalike weights fetch clip` on a machine with internet, or save open_clip's {MODEL} "
        f"{TAG} checkpoint (laion/CLIP-ViT-B-32-laion2B-s34B-b79K, open_clip_model.safetensors) as {CLIP_FILE} in "
        f"the weights directory; needs {INSTALL_HINT}",
    ),
    build=ClipHead,
    abilities=frozenset({TEXT}),
)
