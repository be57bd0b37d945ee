"""The dinov2 head's plumbing with random weights (no download): shape, unit norm, crop, missing file."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_data

pytest.importorskip("timm", reason="timm not installed: pip install 'lookalike[dinov2]'")


def _random_checkpoint(tmp_path, original: bool):
    import timm
    import torch

    from lookalike.heads.dinov2 import DINOV2_FILE

    torch.manual_seed(0)
    if original:  # Meta's layout: 518-px grid (37x37 + CLS) and a mask token
        net = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, img_size=518)
        state = dict(net.state_dict())
        state["mask_token"] = torch.zeros(1, 384)
    else:
        net = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, img_size=224)
        state = net.state_dict()
    torch.save(state, tmp_path / DINOV2_FILE)
    return tmp_path


@pytest.mark.parametrize("original", [True, False])
def test_dinov2_embeds_cca224_crops(tmp_path, original):
    from lookalike.heads import create_head, get_head_spec

    head = create_head("dinov2", device="cpu", weights_dir=_random_checkpoint(tmp_path, original))
    assert head.crop == "cca224" and head.dim == 384 and get_head_spec("dinov2").crop == "cca224"
    crops = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    v = head.embed(crops)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(v[0], v[1])


def test_dinov2_real_face_through_pipeline(tmp_path, detector):
    """A real photo goes through detect -> cca224 crop -> dinov2 (random weights) like any head."""
    from lookalike.heads import create_head
    from lookalike.index.runner import process_files

    photos = sorted(require_data("gallery", "lfw10").rglob("*.jpg"))[:2]
    head = create_head("dinov2", device="cpu", weights_dir=_random_checkpoint(tmp_path, True))
    faces, _ = process_files([str(p) for p in photos], detector, head, lambda p: None)
    assert faces.num_rows >= 2
    assert faces.schema.field("embedding").type.list_size == 384


def test_dinov2_missing_weights_says_how(tmp_path):
    from lookalike.errors import WeightsMissingError
    from lookalike.heads import create_head

    with pytest.raises(WeightsMissingError, match=r"dinov2_vits14_pretrain\.pth.*lookalike weights fetch dinov2"):
        create_head("dinov2", weights_dir=tmp_path)
