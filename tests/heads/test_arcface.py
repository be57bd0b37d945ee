"""The arcface-r50 head's plumbing with random weights (none can be had offline): shape, crop, maps, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_data


def _random_weights(tmp_path):
    import torch

    from lookalike.heads.arcface import ARCFACE_FILE, build_iresnet50

    torch.manual_seed(0)
    state = build_iresnet50().state_dict()
    # the key layout of insightface's backbone.pth (arcface_torch/backbones/iresnet.py)
    assert {"conv1.weight", "prelu.weight", "layer3.13.conv2.weight", "bn2.running_var", "fc.weight"} <= set(state)
    assert state["fc.weight"].shape == (512, 512 * 7 * 7) and "features.running_mean" in state
    torch.save(state, tmp_path / ARCFACE_FILE)
    return tmp_path


def test_arcface_embeds_and_maps(tmp_path):
    from lookalike.heads import create_head

    head = create_head("arcface-r50", device="cpu", weights_dir=_random_weights(tmp_path))
    assert head.crop == "arcface112" and head.dim == 512
    crops = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    v = head.embed(crops)
    assert v.shape == (3, 512) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    e, m = head.embed_with_maps(crops)
    assert m.shape == (3, 512, 7, 7)
    np.testing.assert_allclose(e, v, atol=1e-5)


def test_arcface_real_face_through_pipeline(tmp_path, detector):
    from lookalike.heads import create_head
    from lookalike.index.runner import process_files

    photos = sorted(require_data("gallery", "lfw10").rglob("*.jpg"))[:2]
    head = create_head("arcface-r50", device="cpu", weights_dir=_random_weights(tmp_path))
    faces, _ = process_files([str(p) for p in photos], detector, head, lambda p: None)
    assert faces.num_rows >= 2
    assert faces.schema.field("embedding").type.list_size == 512


def test_arcface_missing_or_foreign_weights(tmp_path):
    import torch

    from lookalike.errors import WeightsMismatchError, WeightsMissingError
    from lookalike.heads import create_head
    from lookalike.heads.arcface import ARCFACE_FILE

    with pytest.raises(WeightsMissingError, match=r"arcface-r50-ms1mv3\.pth.*backbone\.pth"):
        create_head("arcface-r50", device="cpu", weights_dir=tmp_path)
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / ARCFACE_FILE)
    with pytest.raises(WeightsMismatchError, match="do not fit ArcFace IResNet-50"):
        create_head("arcface-r50", device="cpu", weights_dir=tmp_path)
    (tmp_path / ARCFACE_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsMismatchError, match="not a torch state dict"):
        create_head("arcface-r50", device="cpu", weights_dir=tmp_path)
