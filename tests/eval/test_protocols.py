"""Pair protocols: the real LFW and published DoppelVer files, round trips, and the doppelganger generator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lookalike.config import data_dir
from lookalike.curate.protocol import PairProtocol, assign_identity_splits
from lookalike.errors import LookalikeError
from lookalike.eval.generate import generate_doppelganger_protocol
from lookalike.eval.protocols import load_doppel_pair_list, load_doppelver_pairs, load_lfw_pairs, write_doppelver_pairs


def _need(rel: str) -> Path:
    path = data_dir() / rel
    if not path.exists():
        pytest.skip(f"shared data absent: {path}")
    return path


@pytest.fixture(scope="module")
def vise_path() -> Path:
    return _need("doppelver/vise_protocol_published.txt")


@pytest.fixture(scope="module")
def vise(vise_path: Path) -> PairProtocol:
    return load_doppelver_pairs(vise_path)


# --------------------------------------------------------------------------------- published ViSE


def test_vise_published_counts(vise: PairProtocol):
    assert vise.summary() == {"pairs": 45000, "folds": 10, "positives": 22500, "identities": 390}
    assert np.bincount(vise.split).tolist() == [4500] * 10
    assert np.bincount(vise.split, weights=vise.same).tolist() == [2250] * 10
    # Folds are consecutive blocks.
    assert (np.diff(vise.split) >= 0).all()


def test_vise_identities_and_paths(vise: PairProtocol):
    assert vise.a[0] == "DoppelVer_All_112x112/Elle_Fanning 058354_0.jpg"
    assert vise.b[0] == "DoppelVer_All_112x112/Dakota_Fanning 177812_0.jpg"
    assert (vise.identity_a[0], vise.identity_b[0], bool(vise.same[0])) == (
        "Elle_Fanning",
        "Dakota_Fanning",
        False,
    )
    # Every path sits under the one top folder, and the labels agree with the identities read from the paths.
    assert all(p.startswith("DoppelVer_All_112x112/") for p in vise.a + vise.b)
    same_identity = np.array(vise.identity_a) == np.array(vise.identity_b)
    assert (same_identity == vise.same).all()
    # Paths with several spaces (screenshots) are split correctly.
    shots = [p for p in vise.a + vise.b if "Screenshot" in p]
    assert shots and all(p.count("DoppelVer_All_112x112/") == 1 for p in shots)


def test_vise_folds_are_identity_disjoint(vise: PairProtocol):
    folds_of: dict[str, set[int]] = {}
    for x, y, k in zip(vise.identity_a, vise.identity_b, vise.split, strict=True):
        folds_of.setdefault(x, set()).add(int(k))
        folds_of.setdefault(y, set()).add(int(k))
    assert all(len(v) == 1 for v in folds_of.values())


def test_vise_identities_are_the_doppelver_people(vise: PairProtocol):
    pairs = load_doppel_pair_list(_need("doppelver/doppelganger_pairs.csv"))
    assert len(pairs) == 237
    assert set(vise.identities()) == {n for pair in pairs for n in pair}


def test_vise_round_trip_is_exact(vise: PairProtocol, vise_path: Path, tmp_path: Path):
    out = tmp_path / "vise.txt"
    write_doppelver_pairs(vise, out)
    assert out.read_bytes() == vise_path.read_bytes()
    again = load_doppelver_pairs(out)
    assert again.a == vise.a and again.b == vise.b
    assert (again.same == vise.same).all() and (again.split == vise.split).all()
    assert [p.name for p in tmp_path.iterdir()] == ["vise.txt"]  # no temp file left behind


def test_vise_images_root(vise_path: Path):
    p = load_doppelver_pairs(vise_path, images_root=Path("/data/dv"))
    assert p.a[0] == "/data/dv/DoppelVer_All_112x112/Elle_Fanning 058354_0.jpg"
    assert p.source_a[0] == "DoppelVer_All_112x112/Elle_Fanning 058354_0.jpg"


# ------------------------------------------------------------------------------ DoppelVer format


def test_doppelver_parser_on_odd_paths(tmp_path: Path):
    text = (
        "1 Top/Ann_Lee Screenshot 2024-02-15 at 10.57.55\u202fAM_0.jpg Top/Ann_Lee 31_0.jpg\n"
        "0 Top/Ann_Lee 1_0.jpg Top/Bo_Ray a b c.jpg\n"
    )
    f = tmp_path / "p.txt"
    f.write_text(text, encoding="utf-8")
    p = load_doppelver_pairs(f, folds=2)
    assert p.a == ["Top/Ann_Lee Screenshot 2024-02-15 at 10.57.55\u202fAM_0.jpg", "Top/Ann_Lee 1_0.jpg"]
    assert p.b == ["Top/Ann_Lee 31_0.jpg", "Top/Bo_Ray a b c.jpg"]
    assert p.identity_b == ["Ann_Lee", "Bo_Ray"]
    assert p.split.tolist() == [0, 1]
    out = tmp_path / "q.txt"
    write_doppelver_pairs(p, out)
    assert out.read_text(encoding="utf-8") == text


@pytest.mark.parametrize(
    "bad, lineno",
    [
        ("1 T/A x.jpg T/A y.jpg\n2 T/A x.jpg T/B y.jpg\n", 2),  # label not 0/1
        ("1 T/A x.jpg T/A y.jpg\n\n0 T/A x.jpg\n", 3),  # one path only
        ("0 T/A x.jpg T/B y.jpg T/C z.jpg\n", 1),  # three paths
        ("1 T/A x.jpg U/A y.jpg\n", 1),  # second path under another top folder, with spaces
    ],
)
def test_doppelver_malformed_lines_name_the_line(tmp_path: Path, bad: str, lineno: int):
    f = tmp_path / "bad.txt"
    f.write_text(bad, encoding="utf-8")
    with pytest.raises(LookalikeError, match=f"line {lineno}:"):
        load_doppelver_pairs(f, folds=1)


def test_doppelver_uneven_folds_and_missing_file(tmp_path: Path):
    f = tmp_path / "p.txt"
    f.write_text("1 T/A x.jpg T/A y.jpg\n0 T/A x.jpg T/B y.jpg\n0 T/A z.jpg T/B y.jpg\n", encoding="utf-8")
    with pytest.raises(LookalikeError, match="3 pairs"):
        load_doppelver_pairs(f, folds=2)
    with pytest.raises(LookalikeError, match="cannot read"):
        load_doppelver_pairs(tmp_path / "nope.txt")


def test_doppel_pair_list_normalises_names(tmp_path: Path):
    f = tmp_path / "pairs.csv"
    f.write_text("Pair 1,Pair 2\nKaty Perry,Zooey  Deschanel\nMary-Kate_Olsen, Ashley Olsen\n", encoding="utf-8")
    assert load_doppel_pair_list(f) == [
        ("Katy_Perry", "Zooey_Deschanel"),
        ("Mary-Kate_Olsen", "Ashley_Olsen"),
    ]
    f.write_text("a,b\nx,y\n", encoding="utf-8")
    with pytest.raises(LookalikeError, match="line 1"):
        load_doppel_pair_list(f)
    f.write_text("Pair 1,Pair 2\nx\n", encoding="utf-8")
    with pytest.raises(LookalikeError, match="line 2"):
        load_doppel_pair_list(f)


# ------------------------------------------------------------------------------------------- LFW


def test_lfw_pairs_load_and_images_exist():
    pairs_txt = _need("lfw/pairs.txt")
    images = _need("lfw/images")
    p = load_lfw_pairs(pairs_txt, images_root=images)
    s = p.summary()
    assert (s["pairs"], s["positives"], s["folds"]) == (6000, 3000, 10)
    assert np.bincount(p.split).tolist() == [600] * 10
    assert np.bincount(p.split, weights=p.same).tolist() == [300] * 10
    assert p.source_a[0] == "Abel_Pacheco/Abel_Pacheco_0001.jpg"
    assert p.source_b[0] == "Abel_Pacheco/Abel_Pacheco_0004.jpg"
    assert p.a[0] == str(images / "Abel_Pacheco/Abel_Pacheco_0001.jpg")
    assert (np.array(p.identity_a) == np.array(p.identity_b)).tolist() == p.same.tolist()
    missing = sorted({x for x in p.a + p.b if not Path(x).is_file()})
    assert len(missing) <= 1, missing[:5]


def test_lfw_malformed(tmp_path: Path):
    f = tmp_path / "pairs.txt"
    f.write_text("1 1\nA\t1\t2\nA\t1\tB\t1\n", encoding="utf-8")
    p = load_lfw_pairs(f)
    assert p.a == ["A/A_0001.jpg", "A/A_0001.jpg"] and p.b == ["A/A_0002.jpg", "B/B_0001.jpg"]
    f.write_text("1 1\nA\t1\t2\nA\t1\tB\tx\n", encoding="utf-8")
    with pytest.raises(LookalikeError, match="line 3"):
        load_lfw_pairs(f)
    f.write_text("1 1\nA\t1\tB\t2\nA\t1\tB\t1\n", encoding="utf-8")
    with pytest.raises(LookalikeError, match="line 2"):
        load_lfw_pairs(f)
    f.write_text("1 2\nA\t1\t2\n", encoding="utf-8")
    with pytest.raises(LookalikeError, match="promises"):
        load_lfw_pairs(f)


# ------------------------------------------------------------------------------------ generator


def test_assign_identity_splits_by_hand():
    counts = {"A": 10, "B": 5, "C": 4, "D": 3, "E": 1}
    # Components by weight: {A,E}=11, B=5, C=4, D=3. Largest first into the lightest split:
    # {A,E}->0 (11), B->1 (5), C->1 (9), D->1 (12).
    out = assign_identity_splits(counts, [("A", "E"), ("E", "Zed")], n_splits=2)
    assert out == {"A": 0, "E": 0, "B": 1, "C": 1, "D": 1}
    assert assign_identity_splits(counts, [("A", "E")], n_splits=2, seed=5) == out
    # Chains join: A-B and B-C put all three together.
    out = assign_identity_splits(counts, [("A", "B"), ("B", "C")], n_splits=3)
    assert out["A"] == out["B"] == out["C"] != out["D"]


def test_generator_small_by_hand():
    gallery = {"X": ["x1", "x2", "x3"], "Y": ["y1", "y2"], "Z": ["z1"]}
    # Positives: X has C(3,2)=3, Y has 1, Z none; negatives: 3*2 = 6 (Z has no doppelganger pair).
    p = generate_doppelganger_protocol(gallery, [("X", "Y"), ("Y", "X")], pairs_per_split=20, n_splits=1)
    assert p.summary() == {"pairs": 8, "folds": 1, "positives": 4, "identities": 2}
    pos = {(a, b) for a, b, s in zip(p.a, p.b, p.same, strict=True) if s}
    assert pos == {("x1", "x2"), ("x1", "x3"), ("x2", "x3"), ("y1", "y2")}
    assert all(a[0] == "x" and b[0] == "y" for a, b, s in zip(p.a, p.b, p.same, strict=True) if not s)
    # combos_per_pair caps each identity's and each pair's combinations: positives 2 + 1, negatives 2.
    p = generate_doppelganger_protocol(gallery, [("X", "Y")], pairs_per_split=20, combos_per_pair=2, n_splits=1)
    assert p.summary()["pairs"] == 4 and p.summary()["positives"] == 2
    with pytest.raises(LookalikeError):
        generate_doppelganger_protocol(gallery, [("X", "Y")], pairs_per_split=7)
    with pytest.raises(LookalikeError):
        generate_doppelganger_protocol(gallery, [("X", "Nobody")], pairs_per_split=8)


@pytest.fixture(scope="module")
def lfw_doppel() -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    pairs = load_doppel_pair_list(_need("doppelver/doppelganger_pairs_in_lfw.csv"))
    images = _need("lfw/images")
    gallery = {n: sorted(str(p) for p in (images / n).glob("*.jpg")) for pair in pairs for n in pair}
    return gallery, pairs


def test_generator_on_lfw_doppelgangers(lfw_doppel):
    gallery, pairs = lfw_doppel
    assert len(pairs) == 14
    p = generate_doppelganger_protocol(gallery, pairs, pairs_per_split=100, seed=0)
    n = len(p)
    assert n > 0 and 2 * int(p.same.sum()) == n  # exactly 50% positive
    for k in np.unique(p.split):  # ... in every split, each at most pairs_per_split
        m = p.split == k
        assert 2 * int(p.same[m].sum()) == int(m.sum()) <= 100
    # Identity-disjoint splits.
    split_of: dict[str, set[int]] = {}
    for x, y, k in zip(p.identity_a, p.identity_b, p.split, strict=True):
        split_of.setdefault(x, set()).add(int(k))
        split_of.setdefault(y, set()).add(int(k))
    assert all(len(v) == 1 for v in split_of.values())
    doppel = {frozenset(pr) for pr in pairs}
    for a, b, x, y, same in zip(p.a, p.b, p.identity_a, p.identity_b, p.same, strict=True):
        assert a in gallery[x] and b in gallery[y] and a != b
        if same:
            assert x == y  # positives only within an identity
        else:
            assert frozenset((x, y)) in doppel  # negatives only across doppelganger pairs
    # No pair appears twice.
    assert max(Counter(frozenset(t) for t in zip(p.a, p.b, strict=True)).values()) == 1
    # Deterministic with the seed.
    q = generate_doppelganger_protocol(gallery, pairs, pairs_per_split=100, seed=0)
    assert q.a == p.a and q.b == p.b and (q.split == p.split).all()
    r = generate_doppelganger_protocol(gallery, pairs, pairs_per_split=100, seed=1)
    assert (r.a, r.b) != (p.a, p.b)


def test_generated_protocol_round_trip(lfw_doppel, tmp_path: Path):
    gallery, pairs = lfw_doppel
    # At 6 pairs per split every split of the LFW pairs is full, so the file's equal blocks are the splits.
    p = generate_doppelganger_protocol(gallery, pairs, pairs_per_split=6, seed=0)
    assert np.bincount(p.split).tolist() == [6] * 10
    out = tmp_path / "doppel.txt"
    write_doppelver_pairs(p, out)
    q = load_doppelver_pairs(out)
    assert q.a == p.a and q.b == p.b and (q.same == p.same).all() and (q.split == p.split).all()
    assert q.identity_a == p.identity_a and q.identity_b == p.identity_b
