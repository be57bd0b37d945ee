"""`lookalike query` as a user runs it: the right person ranks first, outputs are well formed, errors are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lookalike.cli.app import cli
from lookalike.eval.retrieval import leave_one_out
from lookalike.search.query import Searcher
from tests.conftest import build_index, embedded_page, require_data


def test_lfw10_index_holds_every_main_face(lfw10_index):
    s = Searcher(lfw10_index, load_head=False)
    faces = s.store.faces(["path", "identity", "is_main"])
    main = [p for p, m in zip(faces["path"].to_pylist(), faces["is_main"].to_pylist()) if m]
    assert len(main) == len(set(main)) == 100
    labelled = [i for i, m in zip(faces["identity"].to_pylist(), faces["is_main"].to_pylist()) if m]
    assert None not in labelled and len(set(labelled)) == 10
    others = [i for i, m in zip(faces["identity"].to_pylist(), faces["is_main"].to_pylist()) if not m]
    assert all(i is None for i in others), "only the main face of a labelled photo takes the label"


@pytest.mark.parametrize("gallery", ["lfw10", "five_celebrity"])
def test_leave_one_out_top1_at_least_95_percent(gallery, tmp_path_factory, default_head, detector, lfw10_index):
    src = require_data("gallery", gallery)
    ix = lfw10_index if gallery == "lfw10" else build_index(tmp_path_factory.mktemp("ix"), src, default_head, detector)
    res = leave_one_out(Searcher(ix, load_head=False))
    assert res["queries"] >= 100
    assert res["top1"] >= 0.95, res


def test_query_cli_json_and_html(lfw10_index, tmp_path):
    q = require_data("gallery", "lfw10", "Tony_Blair", "Tony_Blair_0003.jpg")
    other = require_data("group-photos", "couple.jpg")
    html = tmp_path / "sheet.html"
    args = ["query", str(q), str(other), "-k", "5", "--index", str(lfw10_index), "--json", "--html", str(html)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.output.strip().splitlines()]
    assert [Path(a["query"]).name for a in lines] == ["Tony_Blair_0003.jpg", "couple.jpg"]
    blair = lines[0]
    assert set(blair) >= {"query", "head", "results"} and len(blair["results"]) == 5
    assert [r["rank"] for r in blair["results"]] == [1, 2, 3, 4, 5]
    assert all(set(r) >= {"rank", "score", "path", "identity", "face_id"} for r in blair["results"])
    assert blair["results"][0]["identity"] == "Tony_Blair"
    assert all(not r["path"].endswith("Tony_Blair_0003.jpg") for r in blair["results"]), "the query itself"
    scores = [r["score"] for r in blair["results"]]
    assert scores == sorted(scores, reverse=True)
    page = html.read_text()
    assert page.count("<img") == 2 + 10 and "Tony_Blair" in page
    assert f"index: <b>{lfw10_index}</b>" in page and "mode: <b>faces</b>" in page and "k: <b>5</b>" in page
    imgs, links = embedded_page(page)
    assert len(imgs) == 2 + 10 and len(links) == 2 + 10 and Path(blair["results"][0]["path"]).as_uri() in links
    assert "= same person?" in page and "of different-person pairs match" in page


def test_identities_mode_one_face_per_person_and_not_the_query(lfw10_index):
    q = require_data("gallery", "lfw10", "Colin_Powell", "Colin_Powell_0002.jpg")
    res = CliRunner().invoke(
        cli, ["query", str(q), "-k", "9", "--index", str(lfw10_index), "--mode", "identities", "--json"]
    )
    assert res.exit_code == 0, res.output
    results = json.loads(res.output)["results"]
    idents = [r["identity"] for r in results]
    labelled = [i for i in idents if i is not None]
    assert len(labelled) == len(set(labelled)), "one face per identity"
    assert "Colin_Powell" not in idents, "the query's own identity is left out"


def test_face_option_picks_another_face(lfw10_index):
    couple = require_data("group-photos", "couple.jpg")
    runner = CliRunner()
    a = json.loads(runner.invoke(cli, ["query", str(couple), "--index", str(lfw10_index), "--json"]).output)
    b = json.loads(
        runner.invoke(cli, ["query", str(couple), "--index", str(lfw10_index), "--json", "--face", "1"]).output
    )
    assert a["face_index"] == 0 and b["face_index"] == 1 and a["face_box"] != b["face_box"]
    bad = runner.invoke(cli, ["query", str(couple), "--index", str(lfw10_index), "--json", "--face", "7"])
    assert "has 2 face(s)" in json.loads(bad.stdout)["error"]
    assert bad.exit_code == 2 and "lookalike: error: --face 7" in bad.stderr
    # --list-faces says which number is which face: the boxes --face N then uses
    listed = json.loads(
        runner.invoke(cli, ["query", str(couple), "--index", str(lfw10_index), "--json", "--list-faces"]).output
    )
    assert [f["face_index"] for f in listed["faces"]] == [0, 1]
    assert listed["faces"][0]["box"] == [round(v, 1) for v in a["face_box"]]
    assert listed["faces"][1]["box"] == [round(v, 1) for v in b["face_box"]]
    text = runner.invoke(cli, ["query", str(couple), "--index", str(lfw10_index), "--list-faces"]).output
    assert "2 face(s), main face first" in text and "--face 1  box (" in text


def test_one_line_errors(lfw10_index, tmp_path, monkeypatch):
    import subprocess
    import sys

    q = require_data("gallery", "lfw10", "Tony_Blair", "Tony_Blair_0003.jpg")
    run = [sys.executable, "-m", "lookalike"]
    wrong = subprocess.run(
        [*run, "query", str(q), "--index", str(lfw10_index), "--head", "sface"], capture_output=True, text=True
    )
    assert wrong.returncode == 2
    assert wrong.stderr.count("\n") == 1 and "built with head" in wrong.stderr and "--head" in wrong.stderr
    env = {**__import__("os").environ, "LOOKALIKE_WEIGHTS": str(tmp_path / "empty")}
    missing = subprocess.run(
        [*run, "index", str(q.parent), "--out", str(tmp_path / "v"), "--head", "vggface2"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "20180402-114759-vggface2.pt" in missing.stderr and "lookalike weights fetch vggface2" in missing.stderr
    noindex = subprocess.run(
        [*run, "query", str(q), "--index", str(tmp_path / "nothing")], capture_output=True, text=True
    )
    assert noindex.returncode == 2 and "lookalike index" in noindex.stderr


def test_info_json(lfw10_index):
    res = CliRunner().invoke(cli, ["info", str(lfw10_index), "--json"])
    info = json.loads(res.output)
    assert info["files"] == 100 and info["rejects"] == 0 and info["faces"] >= 100 and info["head"]


def test_many_query_photos_are_answered_in_order(lfw10_index):
    """More photos than one decoding batch (QUERY_BATCH): each answer belongs to its own photo."""
    from lookalike.search.query import QUERY_BATCH

    gallery = require_data("gallery", "lfw10")
    photos = [p for person in sorted(gallery.iterdir()) for p in sorted(person.glob("*.jpg"))[:3]]
    photos.insert(7, gallery / "no_such_photo.jpg")  # a failure in the middle keeps its place too
    assert len(photos) > QUERY_BATCH
    answers = Searcher(lfw10_index).query_photos(photos, k=1)
    assert [a.query for a in answers] == [str(p) for p in photos]
    assert answers[7].error and all(a.error is None for i, a in enumerate(answers) if i != 7)
    right = [a.results[0].identity == Path(a.query).parent.name for i, a in enumerate(answers) if i != 7]
    assert sum(right) >= 0.9 * len(right)


def test_a_folder_is_queried_photo_by_photo(lfw10_index, tmp_path):
    import shutil

    person = require_data("gallery", "lfw10", "Tony_Blair")
    folder = tmp_path / "asks"
    (folder / "more").mkdir(parents=True)
    for i, f in enumerate(sorted(person.glob("*.jpg"))[:3]):
        shutil.copy(f, (folder / "more" if i else folder) / f.name)
    (folder / "notes.txt").write_text("not a photo")  # skipped, as `index` skips it
    (folder / "raw.cr2").write_bytes(b"II*\x00")  # answered with its reason
    res = CliRunner().invoke(cli, ["query", str(folder), "--index", str(lfw10_index), "--json", "-k", "1"])
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(lines) == 4 and res.exit_code == 3
    ok = [x for x in lines if not x.get("error")]
    assert len(ok) == 3 and all(x["results"][0]["identity"] == "Tony_Blair" for x in ok)
    assert "unsupported" in next(x["error"] for x in lines if x.get("error"))
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(cli, ["query", str(empty), "--index", str(lfw10_index)])
    assert res.exit_code != 0 and "no photos under this folder" in str(res.exception)  # `main` prints it, exit 2


def test_matches_are_marked_likely_same_person_by_the_measured_threshold(lfw10_index):
    from lookalike.heads.calibration import same_person

    q = require_data("gallery", "lfw10", "Tony_Blair", "Tony_Blair_0003.jpg")
    res = CliRunner().invoke(cli, ["query", str(q), "--index", str(lfw10_index), "--json", "-k", "20"])
    a = json.loads(res.stdout)
    same = a["same_person"]
    assert 0 < same["fmr"] <= 0.001 and same["tmr"] > 0.9 and "LFW View 2" in same["source"]
    for m in a["results"]:
        assert m["same_person"] == (m["score"] >= same["threshold"])
    assert a["results"][0]["identity"] == "Tony_Blair" and a["results"][0]["same_person"]
    assert not all(m["same_person"] for m in a["results"])  # strangers among 20 are not marked
    text = CliRunner().invoke(cli, ["query", str(q), "--index", str(lfw10_index), "-k", "3"]).stdout
    assert "likely the same person" in text and "  1 = " in text
    assert same_person("dinov2", "yunet") is None  # never measured: no mark rather than a guess


def test_query_takes_decoded_images(lfw10_index):
    import numpy as np
    from PIL import Image

    q = require_data("gallery", "lfw10", "Tony_Blair", "Tony_Blair_0003.jpg")
    rgb = np.asarray(Image.open(q).convert("RGB"))
    s = Searcher(lfw10_index)
    by_file, by_array, grey, bad = s.query_photos([q, rgb, rgb.mean(axis=2).astype(np.uint8), rgb[:, :, :2]], k=3)
    assert by_array.query == "<array 1>" and by_array.error is None
    # the file is left out of its own answer (same sha256); the array is not that file, so it finds the photo
    assert by_array.results[0].face_id == f"{q}#0" and by_array.results[0].score > 0.999
    assert [m.face_id for m in by_array.results[1:]] == [m.face_id for m in by_file.results[:2]]
    assert float(by_array.face.embedding @ by_file.face.embedding) > 0.9999  # same pixels, same vector
    assert grey.error is None and grey.results[0].identity == "Tony_Blair"
    assert bad.error and "expected (H, W, 3)" in bad.error


def test_query_marks_at_the_chosen_false_match_rate(lfw10_index):
    from lookalike.heads.calibration import same_person

    q = require_data("gallery", "lfw10", "Tony_Blair", "Tony_Blair_0003.jpg")
    loose, strict = (
        json.loads(CliRunner().invoke(cli, ["query", str(q), "--index", str(lfw10_index), "--json", "--fmr", f]).stdout)
        for f in ("0.01", "0.0001")
    )
    head, det = loose["head"], Searcher(lfw10_index, load_head=False).detector.name  # the index's own detector
    assert loose["same_person"]["threshold"] == same_person(head, det, 0.01).threshold
    assert strict["same_person"]["threshold"] == same_person(head, det, 0.0001).threshold
    assert sum(m["same_person"] for m in strict["results"]) <= sum(m["same_person"] for m in loose["results"])


def test_all_faces_answers_for_every_face_of_the_photo(lfw10_index):
    group = require_data("group-photos", "selfie-many-people.jpg")
    run = CliRunner().invoke
    listed = json.loads(run(cli, ["query", str(group), "--index", str(lfw10_index), "--list-faces", "--json"]).stdout)
    res = run(cli, ["query", str(group), "--index", str(lfw10_index), "--all-faces", "--json", "-k", "2"])
    assert res.exit_code == 0, res.output
    answers = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(listed["faces"]) >= 3 and len(answers) == len(listed["faces"])
    assert [a["face_index"] for a in answers] == [f["face_index"] for f in listed["faces"]]
    assert [a["face_box"] for a in answers] == [f["box"] for f in listed["faces"]]
    assert all(len(a["results"]) == 2 for a in answers)
    both = run(cli, ["query", str(group), "--index", str(lfw10_index), "--all-faces", "--face", "1"])
    assert both.exit_code != 0 and "not both" in str(both.exception)


def test_metadata_read_on_demand_answers_alike(lfw10_index, monkeypatch):
    """Above a size a searcher keeps only vector ids and reads the rest of an answer from Parquet: same answers
    (faces and identities modes, the query's own photo left out by content)."""
    import lookalike.search.meta as meta

    q = [require_data("gallery", "lfw10", "Tony_Blair", "Tony_Blair_0003.jpg"),
         require_data("group-photos", "couple.jpg")]  # fmt: skip
    whole = Searcher(lfw10_index)
    assert isinstance(whole.meta, meta.MemoryMeta)
    monkeypatch.setattr(meta, "IN_MEMORY_UP_TO", 0)
    lazy = Searcher(lfw10_index)
    assert isinstance(lazy.meta, meta.ParquetMeta)
    for mode in ("faces", "identities"):
        a = [x.as_json() for x in whole.query_photos(q, k=8, mode=mode)]
        b = [x.as_json() for x in lazy.query_photos(q, k=8, mode=mode)]
        assert a == b
    vid = a[0]["results"][0]["vector_id"]
    assert lazy.face_record(vid) == whole.face_record(vid) and lazy.identities() == whole.identities()


def test_faces_are_stored_by_vector_id_and_read_by_it(lfw10_index):
    import pyarrow.parquet as pq

    from lookalike.index.store import FaceStore

    store = FaceStore.open(lfw10_index)
    ids = pq.read_table(lfw10_index / "faces.parquet", columns=["vector_id"])["vector_id"].to_pylist()
    assert ids == sorted(ids)
    got = store.faces_by_id([ids[5], ids[2], 10**9], ["path", "identity"])
    assert sorted(got["vector_id"].to_pylist()) == sorted([ids[2], ids[5]]) and set(got.column_names) >= {"path"}
