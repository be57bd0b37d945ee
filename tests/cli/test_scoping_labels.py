"""Dedup stays inside the folder the user named; labels never vanish silently; metric cache keys never collide."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from click.testing import CliRunner

from lookalike.cli.app import cli
from lookalike.curate.dedup import EXACT, Duplicates, Group, plan_removal
from lookalike.index.runner import run_index
from lookalike.search.rerank import MetricReranker, metric_file_name
from lookalike.similarity.metric import Metric
from tests.conftest import require_data


def _run(args, home: Path) -> str:
    env = {"LOOKALIKE_INDEX_HOME": str(home / "indexes")}
    res = CliRunner(env=env).invoke(cli, args)
    assert res.exit_code == 0, (res.output, res.exception)
    return res.output


def _person(name: str, n: int) -> Path:
    return require_data("lfw", "images", name, f"{name}_{n:04d}.jpg")


def test_dedup_folders_of_one_name_never_mix(tmp_path):
    """/a/photos and /b/photos used to share ./indexes/photos-<head>: pairs across folders, deleted files."""
    a, b = tmp_path / "a" / "photos", tmp_path / "b" / "photos"
    for root in (a, b):
        root.mkdir(parents=True)
    shutil.copy(_person("Tony_Blair", 1), a / "blair.jpg")
    shutil.copy(_person("Tony_Blair", 1), a / "blair_copy.jpg")
    shutil.copy(_person("Tony_Blair", 1), b / "blair.jpg")  # the same photo in the other folder
    shutil.copy(_person("Colin_Powell", 1), b / "powell.jpg")
    shutil.copy(_person("Colin_Powell", 1), b / "powell_copy.jpg")
    out_a = json.loads(_run(["dedup", str(a), "--json", "--head", "sface"], tmp_path))
    out_b = json.loads(_run(["dedup", str(b), "--json", "--head", "sface"], tmp_path))
    assert out_a["index"] != out_b["index"]
    pairs_b = {frozenset(p[:2]) for p in out_b["exact"]} | {frozenset((p["a"], p["b"])) for p in out_b["copies"]}
    assert pairs_b == {frozenset((str(b / "powell.jpg"), str(b / "powell_copy.jpg")))}
    # a deleted file leaves the folder's index (pruned), so it is never reported nor kept
    (b / "powell.jpg").unlink()
    again = json.loads(_run(["dedup", str(b), "--json", "--remove", "--head", "sface"], tmp_path))
    assert again["exact"] == [] and again["copies"] == [] and again["removed"] == 0
    faces = pq.read_table(Path(again["index"]) / "faces.parquet")
    assert sorted({Path(p).name for p in faces["path"].to_pylist()}) == ["blair.jpg", "powell_copy.jpg"]


def test_remove_never_keeps_a_vanished_file(tmp_path):
    present = tmp_path / "present.jpg"
    present.write_bytes(b"x")
    gone = str(tmp_path / "gone.jpg")
    dups = Duplicates("ix", "sface", 0.92, 2, groups=[Group(gone, [(str(present), EXACT)])])
    plan = plan_removal(dups)
    assert plan == [{"path": gone, "kept_path": str(present), "score": 1.0, "reason": EXACT}]
    both_gone = Duplicates("ix", "sface", 0.92, 2, groups=[Group(gone, [(str(tmp_path / "also_gone.jpg"), EXACT)])])
    assert plan_removal(both_gone) == []


def test_aligned_crops_of_one_person_are_not_copies(tmp_path, sface, detector):
    """Different photos of one person, as tight aligned crops (DoppelVer style): alike faces, no copies."""
    from lookalike.faces.align import crop_face
    from lookalike.faces.analyzer import FaceAnalyzer
    from lookalike.faces.photos import Photo, load_photo

    root = tmp_path / "crops"
    root.mkdir()
    for n in range(1, 9):
        photo = load_photo(_person("George_W_Bush", n))
        assert isinstance(photo, Photo)
        face = FaceAnalyzer(detector).find([photo])[0][0]
        from PIL import Image

        Image.fromarray(crop_face(photo.rgb, face.geometry, "cca224")).save(root / f"bush_{n}.png")
    out = json.loads(_run(["dedup", str(root), "--json", "--head", "sface"], tmp_path))
    info = json.loads(_run(["info", out["index"], "--json"], tmp_path))
    assert info["files"] >= 6, "the crops were indexed, so pairs could have been found"
    assert out["copies"] == [] and out["exact"] == [] and out["groups"] == []


def test_symlinked_root_keeps_labels(tmp_path, sface, detector):
    real = tmp_path / "real"
    (real / "Tony_Blair").mkdir(parents=True)
    shutil.copy(_person("Tony_Blair", 1), real / "Tony_Blair")
    link = tmp_path / "link"
    os.symlink(real, link)
    report = run_index(str(link), tmp_path / "ix", sface, detector)
    assert report.faces_added == 1
    assert pq.read_table(tmp_path / "ix" / "faces.parquet")["identity"].to_pylist() == ["Tony_Blair"]


def test_labels_csv_quoted_comma_orphans_and_labelled_lists(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(_person("Colin_Powell", 1), photos / "p1.jpg")
    shutil.copy(_person("Tony_Blair", 1), photos / "t1.jpg")
    labels = tmp_path / "labels.csv"
    rows = ["path,identity", 'photos/p1.jpg,"Powell, Colin"', "photos/t1.jpg,Tony Blair", "photos/gone.jpg,Nobody"]
    labels.write_text("\n".join(rows) + "\n")
    res = CliRunner().invoke(cli, ["index", str(photos), "--out", str(tmp_path / "ix"), "--head", "sface",
                                   "--labels", str(labels), "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "1 of 3 labels match no photo" in res.output and "gone.jpg" in res.output
    t = pq.read_table(tmp_path / "ix" / "faces.parquet").filter(pc.field("is_main"))  # only main faces take labels
    got = dict(zip((Path(p).name for p in t["path"].to_pylist()), t["identity"].to_pylist()))
    assert got == {"p1.jpg": "Powell, Colin", "t1.jpg": "Tony Blair"}
    # the same CSV as the source itself: a labelled list
    res = CliRunner().invoke(cli, ["index", str(labels), "--out", str(tmp_path / "ix2"), "--head", "sface", "-q"])
    assert res.exit_code == 0, res.output
    t2 = pq.read_table(tmp_path / "ix2" / "faces.parquet").filter(pc.field("is_main"))
    assert sorted(t2["identity"].to_pylist()) == ["Powell, Colin", "Tony Blair"]


def test_metric_cache_keys_never_collide_and_follow_the_faces(tmp_path):
    assert metric_file_name("identity:王伟") != metric_file_name("identity:李娜")

    class Head:
        weights_sha256 = "w"

    r = MetricReranker.__new__(MetricReranker)
    r.head, r.metrics_dir, r._metrics = Head(), tmp_path, {}
    learnt = []

    def learn(tag):
        def go():
            learnt.append(tag)
            return Metric(np.full((2, 1, 1, 1), float(len(learnt)), np.float32), 0.0, 1.0)

        return go

    a = r._load_or_learn("identity:王伟", learn("wang"), "faces-v1")
    b = r._load_or_learn("identity:李娜", learn("li"), "faces-v1")
    assert learnt == ["wang", "li"] and float(a.M[0, 0, 0, 0]) != float(b.M[0, 0, 0, 0])
    assert len(list(tmp_path.glob("*.pt"))) == 2
    r._load_or_learn("identity:王伟", learn("wang again"), "faces-v1")  # cached: same key, same faces
    assert learnt == ["wang", "li"]
    r._load_or_learn("identity:王伟", learn("wang relearnt"), "faces-v2")  # a photo changed
    assert learnt == ["wang", "li", "wang relearnt"]


def test_a_named_index_is_found_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("LOOKALIKE_INDEX_HOME", raising=False)  # the default home: the user data folder
    monkeypatch.setenv("LOOKALIKE_STATE", str(tmp_path / "user-data"))
    photos = tmp_path / "photos" / "Tony_Blair"
    photos.mkdir(parents=True)
    shutil.copy(_person("Tony_Blair", 1), photos)
    shutil.copy(_person("Tony_Blair", 2), photos)
    a, b, c = (tmp_path / x for x in "abc")
    for d in (a, b, c):
        d.mkdir()
    run = CliRunner().invoke
    monkeypatch.chdir(a)
    assert run(cli, ["index", str(photos.parent), "--name", "holiday", "--head", "sface", "-q"]).exit_code == 0
    home = tmp_path / "user-data" / "indexes"
    assert (home / "holiday" / "manifest.json").exists() and not (a / "indexes").exists()
    monkeypatch.chdir(b)  # another folder: the name finds the same index
    info = run(cli, ["info", "holiday", "--json"])
    assert info.exit_code == 0 and str(home / "holiday") in info.output
    q = run(cli, ["query", str(photos / "Tony_Blair_0001.jpg"), "--index", "holiday", "--json", "-k", "1"])
    assert q.exit_code == 0 and json.loads(q.stdout)["results"][0]["identity"] == "Tony_Blair"
    # $LOOKALIKE_INDEX_HOME still puts named indexes where it says, and the record finds them from elsewhere
    monkeypatch.setenv("LOOKALIKE_INDEX_HOME", str(b / "mine"))
    assert run(cli, ["index", str(photos.parent), "--name", "work", "--head", "sface", "-q"]).exit_code == 0
    assert (b / "mine" / "work" / "manifest.json").exists()
    monkeypatch.delenv("LOOKALIKE_INDEX_HOME")
    monkeypatch.chdir(c)
    assert str(b / "mine" / "work") in run(cli, ["info", "work", "--json"]).output
    shutil.rmtree(b / "mine" / "work")
    assert run(cli, ["info", "work"]).exit_code != 0  # gone: not found through the record


def test_an_index_in_the_old_place_is_used_with_a_notice(tmp_path, monkeypatch):
    """Before, `--name NAME` meant ./indexes/NAME of the current folder: such an index is still found and added
    to (not split in two), with a one-line note saying where new ones go."""
    monkeypatch.delenv("LOOKALIKE_INDEX_HOME", raising=False)
    monkeypatch.setenv("LOOKALIKE_STATE", str(tmp_path / "user-data"))
    photos = tmp_path / "photos" / "Tony_Blair"
    photos.mkdir(parents=True)
    shutil.copy(_person("Tony_Blair", 1), photos)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    old = project / "indexes" / "holiday"
    monkeypatch.setenv("LOOKALIKE_INDEX_HOME", str(project / "indexes"))  # built where the old version put it
    assert (
        CliRunner().invoke(cli, ["index", str(photos.parent), "--name", "holiday", "--head", "sface", "-q"]).exit_code
        == 0
    )
    monkeypatch.delenv("LOOKALIKE_INDEX_HOME")
    from lookalike.index import summary

    summary._NOTICED.clear()
    info = CliRunner().invoke(cli, ["info", "holiday", "--json"])
    assert info.exit_code == 0 and str(old) in info.output
    shutil.copy(_person("Tony_Blair", 2), photos)
    res = CliRunner().invoke(cli, ["index", str(photos.parent), "--name", "holiday", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout.splitlines()[-1])["faces_added"] == 1  # added to the old one
    assert not (tmp_path / "user-data" / "indexes" / "holiday").exists()
    note = info.stderr  # once per process: the later run in this process does not repeat it
    assert note.count("lookalike: note: using ") == 1 and "LOOKALIKE_INDEX_HOME=" in note and str(old) in note
