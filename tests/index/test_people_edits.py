"""People a user can edit: rename, merge, hide, move a face; the edits stay across `lookalike cluster` runs and index
additions, and `query` shows the edited names."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from lookalike.cli.app import cli
from lookalike.errors import LookalikeError
from lookalike.index import people_edits
from tests.conftest import require_data


def _people(ix: Path) -> Counter:
    return Counter(n for n in people_edits.people_view(ix)[1] if n is not None)


def _run(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.fixture
def clustered(lfw10_index, tmp_path) -> Path:
    ix = tmp_path / "ix"
    shutil.copytree(lfw10_index, ix)
    _run("cluster", str(ix), "--ignore-labels")
    return ix


def test_rename_merge_hide_move_survive_a_recluster(clustered: Path) -> None:
    ix = clustered
    before = _people(ix)
    (a, na), (b, nb) = before.most_common(2)
    _run("people", "rename", a, "Alice", "--index", str(ix))
    _run("people", "merge", b, "Alice", "--index", str(ix))
    people = _people(ix)
    assert people["Alice"] == na + nb and a not in people and b not in people
    third = next(p for p in people if p != "Alice")
    _run("people", "hide", third, "--index", str(ix))
    listed = json.loads(_run("people", "list", "--index", str(ix), "--json"))["people"]
    assert third not in [r["person"] for r in listed] and listed[0] == {"person": "Alice", "faces": na + nb,
                                                                        "hidden": False}  # fmt: skip
    face_ids, shown, _ = people_edits.people_view(ix)
    moved = face_ids[shown.index(third)]
    _run("people", "move", moved, "Alice", "--index", str(ix))
    after_edits = _people(ix)
    assert after_edits["Alice"] == na + nb + 1
    # clustering again (its ids are stable): the user's names, merges, hidden people and moves stay
    _run("cluster", str(ix), "--ignore-labels")
    assert _people(ix) == after_edits
    assert people_edits.read_edits(ix).hidden == {third}
    # renaming the merged person carries the merge and the move along
    _run("people", "rename", "Alice", "Alicia", "--index", str(ix))
    assert _people(ix)["Alicia"] == na + nb + 1 and "Alice" not in _people(ix)


def test_query_shows_the_edited_name(clustered: Path) -> None:
    q = require_data("gallery", "lfw10", "Tony_Blair", "Tony_Blair_0003.jpg")
    args = ["query", str(q), "--index", str(clustered), "--json", "-k", "3", "--no-server"]
    first = json.loads(_run(*args))["results"][0]["person"]
    _run("people", "rename", first, "Tony B.", "--index", str(clustered))
    assert {m["person"] for m in json.loads(_run(*args))["results"]} == {"Tony B."}


def test_edits_stay_across_an_index_addition(tmp_path, sface, detector) -> None:
    from lookalike.curate.cluster import cluster_index
    from lookalike.index.runner import IndexOptions, run_index

    src = require_data("gallery", "lfw10")
    photos = tmp_path / "photos"
    for person in ("Tony_Blair", "Colin_Powell"):
        (photos / person).mkdir(parents=True)
        for p in sorted((src / person).glob("*.jpg"))[:4]:
            shutil.copy(p, photos / person / p.name)
    ix = tmp_path / "ix"
    run_index(photos, ix, sface, detector, IndexOptions(workers=0))
    people_edits.rename(ix, "Colin_Powell", "General Powell", set(_people(ix)))
    assert _people(ix)["General Powell"] == 4  # labelled identities, no clustering yet
    for p in sorted((src / "Colin_Powell").glob("*.jpg"))[4:6]:  # two more photos of him
        shutil.copy(p, photos / "Colin_Powell" / p.name)
    run_index(photos, ix, sface, detector, IndexOptions(workers=0))
    assert _people(ix)["General Powell"] == 6
    cluster_index(ix)
    assert _people(ix)["General Powell"] == 6 and "Colin_Powell" not in _people(ix)


def test_bad_edits_are_one_line(clustered: Path) -> None:
    known = set(_people(clustered))
    with pytest.raises(LookalikeError, match="nobody is called"):
        people_edits.rename(clustered, "Nobody Here", "X", known)
    with pytest.raises(LookalikeError, match="themselves"):
        some = next(iter(known))
        people_edits.merge(clustered, some, some, known)
    with pytest.raises(LookalikeError, match="printable"):
        people_edits.rename(clustered, some, "\x00", known)
    (clustered / people_edits.EDITS).write_text("{not json")
    with pytest.raises(LookalikeError, match="cannot be read"):
        people_edits.read_edits(clustered)
