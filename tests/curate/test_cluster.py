"""`lookalike cluster`: people found without labels on real faces, labels respected, ids kept across runs, and
`query` showing each match's person while the grouping is current."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
from click.testing import CliRunner

from lookalike.cli.app import cli
from lookalike.curate.cluster import knn_graph, name_people
from lookalike.index.people import read_people
from lookalike.index.store import FaceStore
from tests.conftest import require_data


def bcubed_f(pred: list, true: list) -> float:
    pairs, pc, tc = Counter(zip(pred, true)), Counter(pred), Counter(true)
    p = sum(c * c / pc[a] for (a, _), c in pairs.items()) / len(pred)
    r = sum(c * c / tc[b] for (_, b), c in pairs.items()) / len(pred)
    return 2 * p * r / (p + r)


def _people(ix):
    t = read_people(ix)
    faces = FaceStore.open(ix).faces(["face_id", "identity", "is_main"])
    ident = dict(zip(faces["face_id"].to_pylist(), faces["identity"].to_pylist()))
    main = dict(zip(faces["face_id"].to_pylist(), faces["is_main"].to_pylist()))
    return [(f, p, ident[f]) for f, p in zip(t["face_id"].to_pylist(), t["person"].to_pylist()) if main[f]]


def test_people_found_without_labels_then_named_by_them(lfw10_index, tmp_path):
    ix = tmp_path / "ix"
    shutil.copytree(lfw10_index, ix)
    run = CliRunner().invoke
    res = run(cli, ["cluster", str(ix), "--ignore-labels", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    rows = _people(ix)
    pred, true = [p for _, p, _ in rows], [i for _, _, i in rows]
    assert bcubed_f(pred, true) >= 0.9, Counter(zip(pred, true))
    assert 8 <= len(set(pred)) <= 14 and all(p.startswith("person-") for p in pred)
    assert summary["faces"] >= 100 and summary["named_by_labels"] == 0
    # run again: the same faces keep the same ids
    assert run(cli, ["cluster", str(ix), "--ignore-labels"]).exit_code == 0
    assert [p for _, p, _ in _people(ix)] == pred
    # with the labels: a labelled face's person is its identity
    assert run(cli, ["cluster", str(ix)]).exit_code == 0
    assert all(p == i for _, p, i in _people(ix))


def test_query_shows_the_person_while_the_grouping_is_current(lfw10_index, tmp_path):
    ix = tmp_path / "ix"
    shutil.copytree(lfw10_index, ix)
    q = require_data("gallery", "lfw10", "Tony_Blair", "Tony_Blair_0003.jpg")
    args = ["query", str(q), "--index", str(ix), "--json", "-k", "3", "--no-server"]
    assert all("person" not in m for m in json.loads(CliRunner().invoke(cli, args).stdout)["results"])
    CliRunner().invoke(cli, ["cluster", str(ix), "--ignore-labels"])
    results = json.loads(CliRunner().invoke(cli, args).stdout)["results"]
    assert len({m["person"] for m in results}) == 1  # Tony Blair's photos: one person
    store = FaceStore.open(ix)
    assert read_people(ix, store.manifest["generation"]) is not None
    assert read_people(ix, store.manifest["generation"] + 1) is None  # a changed index: stale, not shown


def test_naming_keeps_earlier_ids_and_labels():
    groups = np.array([0, 0, 0, 1, 1, 2, 3])
    face_ids = [f"f{i}" for i in range(7)]
    previous = {"f0": "person-7", "f1": "person-7", "f3": "person-2", "f4": "person-9", "f6": "person-2"}
    names = name_people(groups, [None, None, None, None, None, "Ann", None], face_ids, previous)
    assert names[:3] == ["person-7"] * 3  # the group that held person-7 keeps it
    assert names[3] == names[4] in ("person-2", "person-9")
    assert names[5] == "Ann"
    assert names[6] not in names[:5] and names[6].startswith("person-")  # person-2 taken: the next free id
    assert len(set(names)) == 4


def test_knn_graph_on_an_id_mapped_index_equals_the_exact_one():
    from lookalike.index.vector_index import build_index

    rng = np.random.default_rng(0)
    v = rng.normal(size=(300, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = rng.permutation(np.arange(1000, 1300)).astype(np.int64)  # ids are not row numbers
    exact = knn_graph(v, 0.3, k=5)
    mapped = knn_graph(v, 0.3, k=5, index=build_index(v, ids, "Flat"), ids=ids)
    assert (exact != mapped).nnz == 0 and exact.nnz > 0
