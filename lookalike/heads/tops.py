"""The trainable top that `lookalike train` fits on a frozen backbone, and that a trained head rebuilds to load
its weights: a copy of the backbone's last projection (seed 001/003/004), or seed 002's hierarchical version that
adds one linear reduction per intermediate layer and learns how to weigh them.
"""

from __future__ import annotations

from lookalike.errors import LookalikeError

#: Seed 002's 10 intermediate layers: the stem's stages and the two reduction blocks (with the block stacks).
HIER_TAPS = (
    "conv2d_1a", "conv2d_2a", "conv2d_2b", "conv2d_3b", "conv2d_4a", "conv2d_4b",
    "repeat_1", "mixed_6a", "repeat_2", "mixed_7a",
)  # fmt: skip


def is_arcface(backbone) -> bool:
    """True for the arcface-r50 backbone (IResNet-50), False for FaceNet's Inception-ResNet-v1 (each network
    says which it is: `FAMILY`)."""
    return backbone.FAMILY == "iresnet50"


def make_top(backbone, kind: str, hierarchical: bool, tap_channels: list[int] | None = None):
    """The trainable top, initialised so its output equals the backbone's embedding."""
    import copy

    import torch
    from torch import nn

    class Projection(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            arc = is_arcface(backbone)
            self.last_linear = copy.deepcopy(backbone.fc if arc else backbone.last_linear)
            self.last_bn = copy.deepcopy(backbone.features if arc else backbone.last_bn)

        def forward(self, pooled, taps=None):
            return nn.functional.normalize(self.last_bn(self.last_linear(pooled)), dim=1)

    class Hierarchical(nn.Module):
        def __init__(self, channels: list[int]) -> None:
            super().__init__()
            self.base = Projection()
            for p in self.base.parameters():
                p.requires_grad_(False)
            self.reduce = nn.ModuleList([nn.Linear(c, 512) for c in channels])
            for lin in self.reduce:
                nn.init.normal_(lin.weight, std=0.01)
                nn.init.zeros_(lin.bias)
            w = torch.zeros(len(channels) + 1)
            w[-1] = 1.0
            self.combine = nn.Parameter(w)

        def forward(self, pooled, taps):
            self.base.eval()
            rows = [r(t) for r, t in zip(self.reduce, taps, strict=True)] + [self.base(pooled)]
            stacked = torch.stack(rows, dim=1)  # (N, 11, 512)
            return nn.functional.normalize((stacked * self.combine[None, :, None]).sum(1), dim=1)

    if hierarchical:
        if kind != "lookalike":
            raise LookalikeError("--hierarchical is seed 002's option of the lookalike head")
        return Hierarchical(tap_channels or [])
    return Projection()
