"""Benchmarks end to end on real data: the published ViSE file's counts, LFW View 2 on a subset, ViSE mining."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from lookalike.cli.app import cli
from tests.conftest import require_data


@pytest.fixture()
def homes(tmp_path, monkeypatch):
    """Indexes and weights in tmp (no dinov2 / vggface2 weights there; sface comes from its package)."""
    monkeypatch.setenv("LOOKALIKE_INDEX_HOME", str(tmp_path / "indexes"))
    monkeypatch.setenv("LOOKALIKE_WEIGHTS", str(tmp_path / "weights"))
    return tmp_path


def test_published_vise_summary_via_cli():
    f = require_data("doppelver", "vise_protocol_published.txt")
    res = CliRunner().invoke(cli, ["bench", "doppelver", "--protocol", str(f), "--summary"])
    assert res.exit_code == 0, res.output
    assert res.output == '{"pairs": 45000, "folds": 10, "positives": 22500, "identities": 390}\n'


def test_lfw_view2_subset_well_above_chance(homes):
    lfw = require_data("lfw")
    out = homes / "bench"
    args = ["bench", "lfw", "--data", str(lfw), "--head", "sface", "--head", "vggface2", "--pairs", "20"]
    res = CliRunner().invoke(cli, [*args, "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    (r,) = data["results"]
    assert r["head"] == "sface" and r["pairs"] == 200 and len(r["accuracies"]) == 10
    assert r["accuracy"] > 0.85 and r["auc"] > 0.9
    assert r["published_accuracy"] == 0.994
    assert [s["head"] for s in data["skipped"]] == ["vggface2"] and "vggface2.pt" in data["skipped"][0]["reason"]
    md = (out / "lfw.md").read_text()
    assert "| sface |" in md and "99.40" in md and "cosine -1" in md and "vggface2" in md
    # a re-run embeds nothing new
    again = CliRunner().invoke(cli, [*args, "--out", str(out), "--json", "--head", "sface"])
    assert json.loads(again.output)["results"][0]["accuracy"] == r["accuracy"]


def _lfw_subset(root, dest, people: int, per: int):
    """Copy `per` photos of each of the first `people` LFW people with at least `per` photos."""
    names = [ln.split() for ln in (root / "names.txt").read_text().splitlines() if ln.strip()]
    chosen = [n for n, c in names if int(c) >= per][:people]
    for n in chosen:
        (dest / n).mkdir(parents=True)
        for p in sorted((root / "images" / n).glob("*.jpg"))[:per]:
            shutil.copyfile(p, dest / n / p.name)
    return chosen


def test_mine_vise_writes_balanced_identity_disjoint_file(homes):
    from lookalike.eval.protocols import load_protocol

    lfw = require_data("lfw")
    images = homes / "images"
    _lfw_subset(lfw, images, people=60, per=3)
    out = homes / "vise_small.txt"
    res = CliRunner().invoke(
        cli,
        ["mine-vise", "--images", str(images), "--head", "sface", "--threshold", "0.3", "--out", str(out), "--json"],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["mined_negatives"] > 0 and rep["peak_rss_mb"] > 0 and rep["nxn_float32_mb"] >= 0
    proto = load_protocol(out, images)
    s = proto.summary()
    assert s["folds"] == 10 and s["positives"] * 2 == s["pairs"] == rep["pairs"]
    assert len(set(np.bincount(proto.split).tolist())) == 1  # equal consecutive folds
    split_of: dict[str, int] = {}
    for ia, ib, k in zip(proto.identity_a, proto.identity_b, proto.split.tolist()):
        assert split_of.setdefault(ia, k) == k and split_of.setdefault(ib, k) == k  # identity-disjoint
    neg = ~proto.same
    assert all(a != b for a, b, m in zip(proto.identity_a, proto.identity_b, neg) if m)
    assert all(a == b for a, b, m in zip(proto.identity_a, proto.identity_b, neg) if not m)
    assert all((images / p).exists() for p in proto.source_a + proto.source_b)


def test_roc_figure_has_a_log_false_match_axis_operating_points_and_words(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from lookalike.eval.doppelver import _plot_rocs
    from lookalike.eval.metrics import roc_curve

    rng = np.random.default_rng(0)
    same = np.repeat([True, False], 500)
    scores = np.where(same, rng.normal(0.6, 0.15, 1000), rng.normal(0.1, 0.15, 1000))
    fpr, tpr, _ = roc_curve(scores, same)
    op = (float(np.mean(scores[~same] >= 0.4)), float(np.mean(scores[same] >= 0.4)))
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    curves = [("sface", (fpr, tpr, op, 500), 0.99), ("facenet-casia + metric (eq. 11)", (fpr, tpr, op, 500), 0.98)]
    path = _plot_rocs(tmp_path, "vise", curves)
    assert path.exists() and path.stat().st_size > 10_000
    ax = figures[0].axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlim()[0] == pytest.approx(1 / 500)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("sface: cosine") and "weighting learnt per person" in labels[1]
    assert not any("eq." in t for t in labels)
    dots = [ln for ln in ax.get_lines() if ln.get_marker() == "o" and len(ln.get_xdata()) == 1]
    assert len(dots) == 2 and dots[0].get_xdata()[0] == op[0]
