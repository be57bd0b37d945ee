"""Training a look-alike head on real LFW triplets: it learns, saves, and then works as a head by name."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
from click.testing import CliRunner

from lookalike import config
from lookalike.cli import cli

from .conftest import require_data


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
