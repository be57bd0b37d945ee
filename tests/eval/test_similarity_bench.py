"""`bench similarity`: retrieval with a distractor pool by hand, and the command end to end on a few LFW photos."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner

from lookalike.cli.app import cli
from lookalike.eval.similarity import retrieval_table, retrieval_topk
from tests.conftest import require_data


def test_retrieval_topk_with_distractors_by_hand():
    rng = np.random.default_rng(0)
    dis = rng.normal(size=(8, 4))
    dis /= np.linalg.norm(dis, axis=1, keepdims=True)
    a = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    # a reference identical to its anchor is always first, whatever the draws
    assert retrieval_topk(a, a, m=8, distractors=dis, trials=3) == {1: 1.0, 2: 1.0, 5: 1.0}
    # every distractor sits on the anchor, the reference opposite it: last of m, a miss at every k
    near = np.tile(a[:1], (7, 1))
    assert retrieval_topk(a[:1], -a[:1], m=8, distractors=near) == {1: 0.0, 2: 0.0, 5: 0.0}
    # one pair is enough with a pool; m needs m - 1 distractors
    assert set(retrieval_table(a, a, ms=(5, 8, 10), distractors=dis)) == {5, 8}
    with pytest.raises(ValueError):
        retrieval_topk(a, a, m=10, distractors=dis)


def test_retrieval_topk_distractor_rank_between():
    # anchor at e1; reference at distance 1 from it; 3 distractors nearer, 4 farther: rank 4 (0-based 3)
    a = np.array([[1.0, 0.0]])
    ang = np.array([0.1, 0.2, 0.3, 2.0, 2.5, 3.0, 3.1])
    dis = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    ref = np.array([[np.cos(1.0), np.sin(1.0)]])
    assert retrieval_topk(a, ref, m=8, distractors=dis) == {1: 0.0, 2: 0.0, 5: 1.0}


def _identity_triplets(root, path, n: int = 20) -> None:
    """`n` clear identity triplets: two photos of one person, one photo of the next such person."""
    names = [ln.split() for ln in (root / "names.txt").read_text().splitlines() if ln.strip()]
    people = [nm for nm, c in names if int(c) >= 2][: n + 1]

    def photo(nm: str, k: int):
        return root / "images" / nm / f"{nm}_{k:04d}.jpg"

    rows = [f"{photo(a, 1)},{photo(a, 2)},{photo(b, 1)},identity" for a, b in itertools.pairwise(people)]
    path.write_text("anchor,positive,negative,kind\n" + "\n".join(rows) + "\n")


def test_bench_similarity_sface_end_to_end(tmp_path, monkeypatch):
    lfw = require_data("lfw")
    require_data("doppelver", "doppelganger_pairs_in_lfw.csv")
    monkeypatch.setenv("LOOKALIKE_INDEX_HOME", str(tmp_path / "indexes"))
    trip = tmp_path / "triplets.csv"
    _identity_triplets(lfw, trip)
    out = tmp_path / "bench"
    args = ["bench", "similarity", "--head", "sface", "--triplets", str(trip), "--data", str(lfw.parent)]
    res = CliRunner().invoke(cli, [*args, "--limit", "2", "--pool", "12", "--trials", "2", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("sface: triplets ")
    data = json.loads((out / "similarity.json").read_text())
    if data["skipped"]:
        pytest.skip(f"sface not available: {data['skipped'][0]['reason']}")
    (r,) = data["results"]
    assert r["head"] == "sface"
    t = r["triplets"]
    assert t["triplets"] + t["left_out"] == 20 and t["by_kind"]["identity"]["accuracy"] >= 0.8
    m10 = r["retrieval"]["table"]["10"]
    assert set(r["retrieval"]["table"]) == {"10"}  # 12 distractors: m = 20, 60 not possible
    assert 0 <= m10["top1"] <= m10["top2"] <= m10["top5"] <= 1
    assert 0 < r["rankings"]["ndcg6"] <= 1 and r["rankings"]["queries"] > 0
    assert data["rankings"]["source"] == "proxy"
    md = (out / "similarity.md").read_text()
    assert "| sface |" in md and "Proxy, not human rankings" in md


def test_rankings_file_scored_by_hand(tmp_path):
    from lookalike.eval.embed import PhotoVectors
    from lookalike.eval.similarity_bench import load_rankings, score_rankings

    # query q; people put c1 first, then c2, c3; the model (cosine) orders c2, c1, c3
    paths = [str(tmp_path / f"{n}.jpg") for n in ("q", "c1", "c2", "c3")]
    vec = np.array([[1.0, 0], [0.8, 0.6], [0.9, np.sqrt(0.19)], [0, 1.0]], np.float32)
    f = tmp_path / "rankings.csv"
    f.write_text("query,candidate,position\nq.jpg,c1.jpg,0\nq.jpg,c2.jpg,1\nq.jpg,c3.jpg,2\n")
    rk = load_rankings(f)
    assert rk.queries == [paths[0]] and rk.candidates == [paths[1:]]
    res = score_rankings(PhotoVectors(paths, vec, np.ones(4, bool)), rk)
    assert res["top_ranked_precision"]["1"] == 0.0 and res["top_ranked_precision"]["2"] == 1.0
    rel = [3 - 1, 3 - 0, 3 - 2]  # rel = n - position, in model order
    dcg = sum((2**r - 1) / np.log2(i + 2) for i, r in enumerate(rel))
    odcg = sum((2**r - 1) / np.log2(i + 2) for i, r in enumerate(sorted(rel, reverse=True)))
    assert res["ndcg6"] == pytest.approx(dcg / odcg)
