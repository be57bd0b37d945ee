"""Dedup says what a user means: every planted copy of nine edit kinds found and grouped, two different photos of
one person never called copies (shown as similar shots), the page and Review show the answer, --remove / --restore
round trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.dedup_set import KINDS, build
from lookalike.cli.app import cli
from lookalike.curate.copies import MIN_FACE_CORR, MIN_INLIERS
from tests.conftest import embedded_page, index_with_copy, require_data


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """40 LFW people (all their photos) and 4 planted copies of each of the nine edit kinds."""
    require_data("lfw", "images")
    root = tmp_path_factory.mktemp("dedup") / "photos"
    meta = build(root, people=40, per_kind=4, seed=3)
    return root, meta["copies"]


def _run(args, home):
    env = {"LOOKALIKE_INDEX_HOME": str(home / "indexes"), "LOOKALIKE_WEIGHTS": str(home / "weights")}
    res = CliRunner(env=env).invoke(cli, args)
    assert res.exit_code == 0, res.output
    return res.output


def _groups(out: dict) -> dict[str, str]:
    return {p: g["keep"] for g in out["groups"] for p in [g["keep"]] + [c["path"] for c in g["copies"]]}


def test_planted_copies_found_grouped_shown_removed_restored(planted, tmp_path):
    root, copies = planted
    page = tmp_path / "dups.html"
    out = json.loads(_run(["dedup", str(root), "--json", "--html", str(page)], tmp_path))
    assert out["head"] == "sface"  # no dinov2 weights offline: the documented fallback
    group = _groups(out)
    missed = [(kind, b) for a, b, kind in copies if group.get(a, a + "?") != group.get(b, b + "!")]
    assert not missed, missed  # every kind, every copy
    assert {kind for _, _, kind in copies} == set(KINDS)
    for a, _, _ in copies:
        assert group[a] == a, "the original (the older file) is the one kept"
    said = {frozenset(p) for p in out["exact"]} | {frozenset((p["a"], p["b"])) for p in out["copies"]}
    originals = [p for p in said if not any(Path(x).name.startswith("copy-") for x in p)]
    assert not originals, originals  # two distinct LFW files are never copies (none of LFW's own copies is here)
    assert {frozenset(p) for p in out["exact"]} == {frozenset((a, b)) for a, b, k in copies if k == "exact"}
    for p in out["copies"]:
        assert p["evidence"]["inliers"] >= MIN_INLIERS and p["evidence"]["face_corr"] >= MIN_FACE_CORR
    html = page.read_text()
    imgs, links = embedded_page(html)
    assert len(imgs) >= 2 * len(copies) and all(Path(b).as_uri() in links for _, b, _ in copies)
    assert "same photo, edited" in html and "Similar shots" in html

    # --remove takes every copy out, on record; a re-index does not bring them back
    ix = Path(out["index"])
    info = json.loads(_run(["info", str(ix), "--json"], tmp_path))
    rem = json.loads(_run(["dedup", str(ix), "--remove", "--json"], tmp_path))
    assert rem["removed"] == len(copies)
    assert (ix / "removed.parquet").exists()
    after = json.loads(_run(["info", str(ix), "--json"], tmp_path))
    assert after["files"] == info["files"] - rem["removed"]
    assert after["rejects"] == info["rejects"] + rem["removed"]
    _run(["index", str(root), "--out", str(ix), "-q"], tmp_path)
    again = json.loads(_run(["dedup", str(ix), "--json"], tmp_path))
    assert not again["exact"] and not again["copies"]
    # --restore puts them back with their vectors
    _run(["dedup", str(ix), "--restore"], tmp_path)
    back = json.loads(_run(["info", str(ix), "--json"], tmp_path))
    assert [back[k] for k in ("faces", "files", "rejects")] == [info[k] for k in ("faces", "files", "rejects")]
    assert not (ix / "removed.parquet").exists()


def test_two_photos_of_one_scene_are_similar_not_copies(tmp_path):
    """lfw10's Ariel_Sharon 0003/0007 (face cosine 0.930, default head) and Colin_Powell 0007/0008 (0.921):
    different photos that the face embedding alone called duplicates."""
    root = tmp_path / "photos"
    for name, a, b in (("Ariel_Sharon", 3, 7), ("Colin_Powell", 7, 8)):
        (root / name).mkdir(parents=True)
        for n in (a, b):
            shutil.copy(require_data("gallery", "lfw10", name, f"{name}_{n:04d}.jpg"), root / name)
    ix = tmp_path / "ix"
    _run(["index", str(root), "--out", str(ix), "-q"], tmp_path)  # the default head
    out = json.loads(_run(["dedup", str(ix), "--json", "--threshold", "0.9"], tmp_path))
    assert out["exact"] == [] and out["copies"] == [] and out["groups"] == []
    similar = {frozenset(Path(x).name for x in (p["a"], p["b"])) for p in out["similar"]}
    assert frozenset(("Ariel_Sharon_0003.jpg", "Ariel_Sharon_0007.jpg")) in similar
    assert all(p["kind"] == "similar shot" and p["evidence"]["face_corr"] < MIN_FACE_CORR for p in out["similar"])
    rem = json.loads(_run(["dedup", str(ix), "--remove", "--json", "--threshold", "0.9"], tmp_path))
    assert rem["removed"] == 0


@pytest.fixture
def with_copy(tmp_path, sface, detector):
    ix, root = index_with_copy(
        tmp_path, sface, detector, {"Tony_Blair": 2}, ("Tony_Blair_0001.jpg", "Tony_Blair_0001 copy.jpg")
    )
    photos = root / "Tony_Blair"
    plan = [{"path": str(photos / "Tony_Blair_0001 copy.jpg"), "kept_path": str(photos / "Tony_Blair_0001.jpg"),
             "score": 1.0, "reason": "exact copy"}]  # fmt: skip
    return ix, plan


def _paths(ix) -> set[str]:
    from lookalike.index.store import FaceStore

    return set(FaceStore.open(ix).faces(["path"])["path"].to_pylist())


def test_a_removal_that_cannot_be_written_changes_nothing(with_copy, monkeypatch):
    """A full disk while the removal is committed: one line, the index as it was, no record of a removal."""
    import errno

    from lookalike.curate.dedup import remove_duplicates
    from lookalike.index.layout import REMOVED
    from lookalike.index.store import FaceStore

    ix, plan = with_copy
    before = _paths(ix)

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FaceStore, "commit_part", full)
    with pytest.raises(OSError):
        remove_duplicates(ix, plan)
    monkeypatch.undo()
    assert _paths(ix) == before and not (ix / REMOVED).exists()
    assert not [f for f in ix.iterdir() if f.name.startswith(f".{REMOVED}")]  # no temp record left either


def test_a_removal_whose_compaction_fails_is_said_as_done(with_copy, monkeypatch):
    from lookalike.curate.dedup import remove_duplicates, restore_removed
    from lookalike.errors import LookalikeError
    from lookalike.index.layout import REMOVED
    from lookalike.index.store import FaceStore

    ix, plan = with_copy
    before = _paths(ix)

    def full(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FaceStore, "finalize", full)
    with pytest.raises(LookalikeError, match=r"removed 1 photos .* compacting the index failed"):
        remove_duplicates(ix, plan)
    monkeypatch.undo()
    assert _paths(ix) == before - {plan[0]["path"]} and (ix / REMOVED).exists()  # as said: removed, recorded
    assert restore_removed(ix) == 1 and _paths(ix) == before
