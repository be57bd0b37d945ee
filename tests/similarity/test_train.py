"""Training a look-alike head on real LFW triplets: it learns, saves, and then works as a head by name."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
from click.testing import CliRunner

from lookalike import config
from lookalike.cli.app import cli
from tests.conftest import require_data


def _triplets(tmp_path, n=120):
    root = require_data("lfw", "images")
    rng = random.Random(0)
    people = [p for p in sorted(x.name for x in root.iterdir()) if len(list((root / p).glob("*.jpg"))) >= 4][:12]
    others = [p for p in sorted(x.name for x in root.iterdir()) if p not in people][:40]
    f = tmp_path / "triplets.csv"
    with f.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["anchor", "positive", "negative", "confidence"])
        for _ in range(n):
            person = rng.choice(people)
            a, p = rng.sample(sorted((root / person).glob("*.jpg"))[:4], 2)
            neg = sorted((root / rng.choice(others)).glob("*.jpg"))[0]
            w.writerow([a, p, neg, 1.0])
    return f


def _weights_dir(tmp_path):
    wd = tmp_path / "weights"
    wd.mkdir()
    src = config.weights_dir()
    for name in ("facenet-casia-webface.pt", "facenet-casia-webface.pt.json"):
        if (src / name).exists():
            (wd / name).symlink_to(src / name)
    return wd


def test_train_lookalike_then_use_as_head(tmp_path, monkeypatch):
    f = _triplets(tmp_path)
    wd = _weights_dir(tmp_path)
    monkeypatch.setenv(config.WEIGHTS_ENV, str(wd))
    args = ["train", "lookalike", "--triplets", str(f), "--name", "t1", "--epochs", "3", "--json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output.strip().splitlines()[-1])
    assert rep["head"] == "lookalike:t1" and len(rep["loss_per_epoch"]) == 3
    assert rep["held_out_triplets"] > 0 and 0 <= rep["accuracy_after"]["held_out"] <= 1
    assert (wd / "trained" / "lookalike-t1.pt").exists()

    from lookalike.heads import create_head, list_heads

    assert "lookalike:t1" in list_heads()
    head = create_head("lookalike:t1")
    crops = (np.random.default_rng(0).random((2, 160, 160, 3)) * 255).astype(np.uint8)
    e = head.embed(crops)
    assert e.shape == (2, 512) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)


def test_train_perface_and_hierarchical(tmp_path, monkeypatch):
    f = _triplets(tmp_path, 80)
    monkeypatch.setenv(config.WEIGHTS_ENV, str(_weights_dir(tmp_path)))
    for args in (["perface"], ["lookalike", "--hierarchical"]):
        res = CliRunner().invoke(cli, ["train", *args, "--triplets", str(f), "--name", "t2", "--epochs", "2", "--json"])
        assert res.exit_code == 0, res.output
        rep = json.loads(res.output.strip().splitlines()[-1])
        assert rep["loss_per_epoch"][-1] <= rep["loss_per_epoch"][0] + 1e-6


def test_train_perface_on_arcface_backbone(tmp_path, monkeypatch):
    """With ArcFace R50 weights present (random here: none exist offline), perface trains on that backbone,
    and the result is a head with ArcFace's crop that embeds like any other."""
    import torch

    from lookalike.heads.arcface import ARCFACE_FILE, build_iresnet50

    f = _triplets(tmp_path, 60)
    wd = _weights_dir(tmp_path)
    torch.manual_seed(0)
    torch.save(build_iresnet50().state_dict(), wd / ARCFACE_FILE)
    monkeypatch.setenv(config.WEIGHTS_ENV, str(wd))
    res = CliRunner().invoke(cli, ["train", "perface", "--triplets", str(f), "--name", "a1", "--epochs", "1", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output.strip().splitlines()[-1])
    assert rep["backbone"] == "arcface-r50"  # --backbone auto took it because its weights are there
    assert json.loads((wd / "trained" / "perface-a1.pt.json").read_text())["base_head"] == "arcface-r50"

    from lookalike.heads import create_head

    head = create_head("perface:a1")
    assert head.crop == "arcface112"
    crops = (np.random.default_rng(0).random((2, 112, 112, 3)) * 255).astype(np.uint8)
    e = head.embed(crops)
    assert e.shape == (2, 512) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    # the top starts as ArcFace's own fc + features: untrained, it reproduces the backbone's embedding
    from lookalike.heads.tops import make_top

    base = create_head("arcface-r50", precision="fp32")  # an identity of the maths: no bf16 rounding
    top = make_top(base.net, "perface", False).eval()
    emb, maps = base.embed_with_maps(crops)
    with torch.no_grad():
        again = top(torch.from_numpy(maps.reshape(len(maps), -1))).numpy()
    np.testing.assert_allclose(again, emb, atol=1e-4)
    res = CliRunner().invoke(
        cli, ["train", "perface", "--triplets", str(f), "--name", "c1", "--epochs", "1", "--backbone",
              "facenet-casia", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["backbone"] == "facenet-casia"
    assert create_head("perface:c1").crop == "facenet160"
