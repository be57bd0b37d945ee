"""ArcFace R50: insightface's IResNet-50 (arcface_torch), 512-d, the backbone seed 004 fine-tunes for `perface`.

The network mirrors `recognition/arcface_torch/backbones/iresnet.py` module for module, so that repository's
`backbone.pth` (a plain state dict, e.g. ms1mv3_arcface_r50_fp16) loads as is. Input: the 112x112 ArcFace
5-point crop, RGB scaled as (x / 255 - 0.5) / 0.5. No weights can be fetched from here (the model zoo sits
behind OneDrive/Baidu links): the user copies the file into the weights directory; a file that does not fit
the network is refused with a one-line error. `embed_with_maps` also returns the last stage's map
(512 x 7 x 7), so `query --rerank metric` works on an ArcFace index too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike.errors import WeightsMismatchError
from lookalike.heads.base import FEATURE_MAPS, Head, HeadSpec, load_state_file
from lookalike.heads.facenet import _torch_device
from lookalike.weights import WeightsSpec

ARCFACE_FILE = "arcface-r50-ms1mv3.pth"
#: IResNet-50's blocks per stage.
LAYERS = (3, 4, 14, 3)


def build_iresnet50(state_dict: dict | None = None):
    """insightface's iresnet50 (eval mode), optionally with a `backbone.pth` state dict loaded."""
    import torch
    from torch import nn

    def conv3x3(i: int, o: int, stride: int = 1) -> nn.Conv2d:
        return nn.Conv2d(i, o, kernel_size=3, stride=stride, padding=1, bias=False)

    class IBasicBlock(nn.Module):
        def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None) -> None:
            super().__init__()
            self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
            self.conv1 = conv3x3(inplanes, planes)
            self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
            self.prelu = nn.PReLU(planes)
            self.conv2 = conv3x3(planes, planes, stride)
            self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
            self.downsample = downsample

        def forward(self, x):
            out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
            return out + (self.downsample(x) if self.downsample is not None else x)

    class IResNet(nn.Module):
        FAMILY = "iresnet50"

        def __init__(self) -> None:
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(64, eps=1e-05)
            self.prelu = nn.PReLU(64)
            self.layer1 = self._make_layer(64, LAYERS[0])
            self.layer2 = self._make_layer(128, LAYERS[1])
            self.layer3 = self._make_layer(256, LAYERS[2])
            self.layer4 = self._make_layer(512, LAYERS[3])
            self.bn2 = nn.BatchNorm2d(512, eps=1e-05)
            self.dropout = nn.Dropout(p=0.0)
            self.fc = nn.Linear(512 * 7 * 7, 512)
            self.features = nn.BatchNorm1d(512, eps=1e-05)

        def _make_layer(self, planes: int, blocks: int) -> nn.Sequential:
            down = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=2, bias=False),
                nn.BatchNorm2d(planes, eps=1e-05),
            )
            layers = [IBasicBlock(self.inplanes, planes, 2, down)]
            self.inplanes = planes
            layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward_with_map(self, x):
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            fmap = self.bn2(x)
            return self.features(self.fc(self.dropout(torch.flatten(fmap, 1)))), fmap

        def forward(self, x):
            return self.forward_with_map(x)[0]

    net = IResNet()
    if state_dict is not None:
        missing, unexpected = net.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise WeightsMismatchError(
                f"weights do not fit ArcFace IResNet-50: missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}"
            )
    return net.eval()


class ArcFaceHead(Head):
    def __init__(self, spec: HeadSpec, path: Path, sha: str, device: str) -> None:

        super().__init__(spec, sha, _torch_device(device))
        state = load_state_file(path, spec.weights.how_to_get)
        self.net = build_iresnet50(state).to(self.device)

    def preprocess(self, crops: np.ndarray):
        """`(N, 112, 112, 3) uint8 RGB` -> `(N, 3, 112, 112) float32` tensor in [-1, 1] on the head's device."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
        return (x.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5

    def _forward(self, crops: np.ndarray) -> np.ndarray:

        with self.inference():
            return self.net(self.preprocess(crops)).float().cpu().numpy()

    def embed_with_maps(self, crops: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings `(N, 512)` L2-normalised and the last stage's map `(N, 512, 7, 7)`, in batches, no grad."""
        import torch.nn.functional as F

        embs, maps = [], []
        with self.inference():
            for i in range(0, len(crops), batch_size):
                e, m = self.net.forward_with_map(self.preprocess(crops[i : i + batch_size]))
                embs.append(F.normalize(e.float(), dim=1).cpu().numpy())
                maps.append(m.float().cpu().numpy())
        if not embs:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, 512, 7, 7), np.float32)
        return np.concatenate(embs), np.concatenate(maps)


SPEC = HeadSpec(
    name="arcface-r50",
    dim=512,
    crop="arcface112",
    role="face identity, ArcFace IResNet-50 (insightface arcface_torch); the backbone seed 004 fine-tunes",
    weights=WeightsSpec(
        filename=ARCFACE_FILE,
        how_to_get="copy insightface arcface_torch's backbone.pth of ms1mv3_arcface_r50_fp16 (model zoo in "
        "github.com/deepinsight/insightface, recognition/arcface_torch) into the weights directory as "
        f"{ARCFACE_FILE} (every index records the file's sha256 and refuses other weights)",
    ),
    build=ArcFaceHead,
    abilities=frozenset({FEATURE_MAPS}),
)
