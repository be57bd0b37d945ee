"""An index folder the engine owns: damage is detected and repaired, user files are never touched, readers
never crash while a writer finalizes, and the CLI refuses what it cannot do before any model loads."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lookalike.cli.app import main
from lookalike.index.layout import FACES, INDEX, MANIFEST, REJECTS
from lookalike.index.repair import repair_index
from lookalike.index.runner import run_index
from lookalike.index.store import FaceStore, faces_schema
from lookalike.search.query import Searcher
from tests.conftest import require_data

PEOPLE = ("Tony_Blair", "Colin_Powell", "Hugo_Chavez")


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """`lookalike ARGS` through the console entry point, in this process: (exit status, stdout, stderr)."""
    old = sys.argv
    sys.argv = ["lookalike", *args]
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos") / "people"
    lfw = require_data("lfw", "images")
    for name in PEOPLE:
        (root / name).mkdir(parents=True)
        for f in sorted((lfw / name).glob("*.jpg"))[:2]:
            shutil.copy(f, root / name / f.name)
    (root / "notes.jpg").write_text("no photo")
    return root


@pytest.fixture(scope="module")
def healthy(tmp_path_factory, photos, sface, detector) -> Path:
    out = tmp_path_factory.mktemp("ix") / "healthy"
    run_index(photos, out, sface, detector)
    return out


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zeroed":
        path.write_bytes(b"\0" * len(data))
    elif how == "junk":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    elif how == "deleted":
        path.unlink()


@pytest.mark.parametrize("name", [MANIFEST, FACES, REJECTS, INDEX])
@pytest.mark.parametrize("how", ["truncated", "zeroed", "junk", "deleted"])
def test_damage_is_one_line_and_repair_keeps_what_survives(healthy, photos, tmp_path, capsys, name, how):
    ix = tmp_path / "ix"
    shutil.copytree(healthy, ix)
    before = pq.read_table(healthy / FACES)
    _damage(ix / name, how)
    query = str(photos / "Tony_Blair" / "Tony_Blair_0001.jpg")
    for args in (["info", str(ix)], ["query", query, "--index", str(ix)], ["index", str(photos), "--out", str(ix)]):
        code, _, err = _cli(capsys, *args)
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lookalike: error: ") and "repair" in lines[0], (args, err)

    code, out, err = _cli(capsys, "repair", str(ix))
    assert code == 0, err
    code, out, err = _cli(capsys, "info", str(ix), "--json")
    assert code == 0, err
    after = pq.read_table(ix / FACES)
    ids = after["vector_id"].to_pylist()
    assert len(set(ids)) == len(ids)
    survived = 0 if name == FACES else before.num_rows  # only faces.parquet holds face rows
    assert after.num_rows == survived
    assert FaceStore.open(ix).load_index().ntotal == after.num_rows
    # the next run embeds what was lost, and the index answers again
    code, _, err = _cli(capsys, "index", str(photos), "--out", str(ix), "-q")
    assert code == 0, err
    final = pq.read_table(ix / FACES)
    assert sorted(final["face_id"].to_pylist()) == sorted(before["face_id"].to_pylist())
    assert len(set(final["vector_id"].to_pylist())) == final.num_rows
    code, out, err = _cli(capsys, "query", query, "--index", str(ix), "--json", "-k", "1")
    assert code == 0 and '"identity": "Tony_Blair"' in out, (out, err)


def test_lost_manifest_never_reuses_ids(healthy, photos, tmp_path, capsys):
    """Before: a lost manifest was recreated with next_id 0 and two people shared vector id 0."""
    ix = tmp_path / "ix"
    shutil.copytree(healthy, ix)
    (ix / MANIFEST).unlink()
    new = photos.parent / "more"
    shutil.copytree(photos, new)
    chirac = require_data("lfw", "images", "Jacques_Chirac", "Jacques_Chirac_0001.jpg")
    shutil.copy(chirac, new / "Tony_Blair" / "x.jpg")
    code, _, err = _cli(capsys, "index", str(new), "--out", str(ix), "-q")
    assert code == 2 and "lost its manifest.json" in err
    assert _cli(capsys, "repair", str(ix))[0] == 0
    assert _cli(capsys, "index", str(new), "--out", str(ix), "-q")[0] == 0
    t = pq.read_table(ix / FACES)
    assert len(set(t["vector_id"].to_pylist())) == t.num_rows


def test_repair_gives_unique_ids_to_colliding_rows(healthy, tmp_path):
    ix = tmp_path / "ix"
    shutil.copytree(healthy, ix)
    t = pq.read_table(ix / FACES)
    t = t.set_column(0, "vector_id", pa.array([0] * t.num_rows, pa.int64()))  # every face claims id 0
    pq.write_table(t, ix / FACES)
    (ix / MANIFEST).unlink()
    report = repair_index(ix)
    assert report.ids_reassigned == t.num_rows - 1
    fixed = FaceStore.open(ix).faces(["vector_id"])["vector_id"].to_pylist()
    assert sorted(fixed) == list(range(t.num_rows))


def test_recovery_touches_only_its_own_files(healthy, photos, tmp_path, capsys):
    ix = tmp_path / "ix"
    shutil.copytree(healthy, ix)
    mine = [ix / "parts" / "notes.txt", ix / ".thesis.tmp", ix / "finalize-report.txt", ix / "parts" / "000001.tmp"]
    for f in mine:
        f.write_text("the user's")
    (photos / "Tony_Blair" / "Tony_Blair_0001.jpg").touch()  # a run that finalizes, so recovery runs twice
    assert _cli(capsys, "index", str(photos), "--out", str(ix), "-q")[0] == 0
    assert all(f.read_text() == "the user's" for f in mine)
    # the temp file of a journal a killed finalize was writing goes with the next run
    left = ix / ".finalize.json.k1ll3d_x.tmp"
    left.write_text("{")
    (photos / "Tony_Blair" / "Tony_Blair_0001.jpg").touch()
    assert _cli(capsys, "index", str(photos), "--out", str(ix), "-q")[0] == 0
    assert not left.exists() and all(f.read_text() == "the user's" for f in mine)
    # and a new index is never made in a folder of someone else's files
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("...")
    code, _, err = _cli(capsys, "index", str(photos), "--out", str(foreign), "-q")
    assert code == 2 and "not empty" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["chapter1.tex"]


def test_touched_identical_file_is_not_embedded_again(healthy, photos, tmp_path, sface, detector):
    ix = tmp_path / "ix"
    shutil.copytree(healthy, ix)
    run_index(photos, ix, sface, detector)  # takes in what other tests touched
    before = pq.read_table(ix / FACES)
    target = photos / "Colin_Powell" / sorted(p.name for p in (photos / "Colin_Powell").iterdir())[0]
    target.touch()
    report = run_index(photos, ix, sface, detector)
    assert report.files_touched == 1 and report.faces_added == 0
    after = pq.read_table(ix / FACES)
    assert sorted(after["vector_id"].to_pylist()) == sorted(before["vector_id"].to_pylist())
    again = run_index(photos, ix, sface, detector)
    assert again.files_processed == 0, "the new mtime was recorded"


def test_ann_factory_before_it_can_train(photos, tmp_path, capsys):
    ix = tmp_path / "ivf"
    args = ["index", str(photos), "--out", str(ix), "--head", "sface", "--index-type", "IVF1024,Flat", "-q"]
    code, _, err = _cli(capsys, *args)
    assert code == 0, err
    code, out, _ = _cli(capsys, "info", str(ix), "--json")
    assert '"index_active": "Flat (exact until IVF1024,Flat can train' in out
    q = str(photos / "Hugo_Chavez" / sorted(p.name for p in (photos / "Hugo_Chavez").iterdir())[0])
    code, out, err = _cli(capsys, "query", q, "--index", str(ix), "--json", "-k", "1")
    assert code == 0 and '"identity": "Hugo_Chavez"' in out, err


def test_refusals_come_before_models_load(photos, healthy, tmp_path, capsys, monkeypatch):
    import lookalike.heads as heads
    from lookalike.locks import file_lock

    def no_models(*a, **k):
        raise AssertionError("a model was loaded before the refusal")

    monkeypatch.setattr(heads, "create_head", no_models)
    code, _, err = _cli(capsys, "index", str(photos), "--out", str(tmp_path / "x"), "--index-type", "IVFnope")
    assert code == 2 and "not a FAISS index factory string" in err and len(err.strip().splitlines()) == 1
    ix = tmp_path / "busy"
    shutil.copytree(healthy, ix)
    with file_lock(ix / ".writer.lock") as held:  # another `lookalike index` run holds the index
        assert held
        code, _, err = _cli(capsys, "index", str(photos), "--out", str(ix))
        assert code == 2 and "another `lookalike index` run is writing" in err


def test_single_photo_source(photos, tmp_path, capsys):
    one = photos / "Tony_Blair" / "Tony_Blair_0001.jpg"
    code, out, err = _cli(capsys, "index", str(one), "--out", str(tmp_path / "one"), "--head", "sface", "--json")
    assert code == 0, err
    t = pq.read_table(tmp_path / "one" / FACES)
    assert json.loads(out)["faces_added"] == t.num_rows >= 1 and set(t["path"].to_pylist()) == {str(one)}


def _synthetic_part(dim: int, paths: list[str], rng) -> pa.Table:
    vec = rng.normal(size=(len(paths), dim)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    n = len(paths)
    return pa.Table.from_pydict(
        {
            "vector_id": [None] * n, "face_id": [f"{p}#0" for p in paths], "path": paths, "sha256": ["0" * 64] * n,
            "file_size": [1] * n, "mtime_ns": [1] * n, "face_index": [0] * n, "is_main": [True] * n,
            "box": [[0.0, 0.0, 1.0, 1.0]] * n, "landmarks": [[0.0] * 10] * n, "prob": [0.99] * n,
            "identity": ["x"] * n, "head": ["sface"] * n, "width": [1] * n, "height": [1] * n,
            "added_at": [pa.scalar(0, pa.timestamp("us", tz="UTC")).as_py()] * n, "embedding": list(vec),
        },
        schema=faces_schema(dim),
    )  # fmt: skip


def test_reader_during_finalize_never_crashes(tmp_path, capsys):
    """A writer commits parts and finalizes in a loop; readers open the index meanwhile, again and again:
    each sees one whole generation (every FAISS id has its metadata row), never a missing part."""
    from lookalike.index.store import REJECTS_SCHEMA

    ix = tmp_path / "ix"
    dim = 16
    rng = np.random.default_rng(0)
    stop = threading.Event()
    errors: list[BaseException] = []
    rounds = {"writer": 0, "reader": 0}

    def write() -> None:
        try:
            k = 0
            while not stop.is_set():
                with FaceStore.writer(ix, "sface", dim, "w", {}) as w:
                    for _ in range(2):
                        part = _synthetic_part(dim, [f"/p/{k}_{i}.jpg" for i in range(5)], rng)
                        ids = w.reserve_ids(part.num_rows)
                        w.commit_part(part.set_column(0, "vector_id", pa.array(ids, pa.int64())),
                                      REJECTS_SCHEMA.empty_table())  # fmt: skip
                        k += 1
                    w.finalize()
                rounds["writer"] += 1
        except BaseException as e:  # surfaced below
            errors.append(e)

    with FaceStore.writer(ix, "sface", dim, "w", {}) as w:
        w.finalize()
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    deadline = time.time() + 60
    try:
        while (rounds["reader"] < 300 or rounds["writer"] < 20) and time.time() < deadline and not errors:
            s = Searcher(ix, load_head=False)
            assert s.size == len(s._ids), "FAISS and metadata from one generation"
            if s.size:
                _, ids = s.index.search(np.ones((1, dim), np.float32), min(5, s.size))
                assert set(ids[0].tolist()) <= set(s._ids.tolist())
            rounds["reader"] += 1
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not errors, errors
    with capsys.disabled():
        print(f"\n  reader during finalize: {rounds['reader']} reader opens against {rounds['writer']} finalizes")
    assert rounds["reader"] >= 300 and rounds["writer"] >= 5


def test_no_command_prints_a_traceback_on_a_damaged_index(healthy, photos, tmp_path, capsys):
    """Every verb that opens an index, on each index file truncated, zeroed or deleted: one line, exit 2."""
    query = str(photos / "Tony_Blair" / "Tony_Blair_0001.jpg")
    attributes = tmp_path / "attributes.csv"
    attributes.write_text("identity,gender,age\nTony_Blair,male,older\nColin_Powell,male,older\n")
    commands = [
        ["info", "{ix}"],
        ["query", query, "--index", "{ix}"],
        ["query", query, "--index", "{ix}", "--mode", "identities", "--json"],
        ["index", str(photos), "--out", "{ix}"],
        ["dedup", "{ix}", "--json"],
        ["dedup", "{ix}", "--remove"],
        ["dedup", "{ix}", "--restore"],
        ["mine-vise", "--index", "{ix}", "--out", str(tmp_path / "vise.txt")],
        ["anonymize-candidates", query, "--pool", "{ix}", "--attributes", str(attributes)],
    ]
    tried = 0
    for name in (MANIFEST, FACES, REJECTS, INDEX):
        for how in ("truncated", "zeroed", "deleted"):
            ix = tmp_path / f"{name}-{how}"
            shutil.copytree(healthy, ix)
            _damage(ix / name, how)
            for cmd in commands:
                code, _, err = _cli(capsys, *[a.format(ix=ix) for a in cmd])
                lines = err.strip().splitlines()
                one_line = len(lines) == 1 and lines[0].startswith("lookalike: error: ")
                assert code == 2 and one_line, (name, how, cmd, err)
                tried += 1
    with capsys.disabled():
        print(f"\n  damaged-index sweep: {tried} commands, each one line and exit 2")


def test_full_disk_is_one_line_and_loses_nothing(photos, tmp_path, capsys, monkeypatch):
    import errno

    import lookalike.index.store as store_mod

    real = store_mod.pq.write_table
    calls = {"n": 0}

    def full(*a, **k):
        calls["n"] += 1
        if calls["n"] >= 3:  # the first part is written, then the disk fills up
            raise OSError(errno.ENOSPC, "No space left on device", str(a[1]))
        return real(*a, **k)

    ix = tmp_path / "ix"
    monkeypatch.setattr(store_mod.pq, "write_table", full)
    code, _, err = _cli(capsys, "index", str(photos), "--out", str(ix), "--head", "sface", "--batch-size", "2", "-q")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "No space left on device" in lines[0], err
    monkeypatch.setattr(store_mod.pq, "write_table", real)
    code, _, err = _cli(capsys, "index", str(photos), "--out", str(ix), "--json")
    assert code == 0, err
    t = pq.read_table(ix / FACES)
    code, _, err = _cli(capsys, "index", str(photos), "--out", str(tmp_path / "clean"), "--head", "sface", "-q")
    clean = pq.read_table(tmp_path / "clean" / FACES)  # the same photos indexed with a disk that never fills
    assert sorted(t["face_id"].to_pylist()) == sorted(clean["face_id"].to_pylist())
    assert len(set(t["vector_id"].to_pylist())) == t.num_rows


def test_a_flipped_byte_in_the_vectors_is_found_and_not_carried(healthy, photos, tmp_path, capsys):
    """One bit flipped on disk inside faces.parquet's embeddings: `info` says which file, `repair` does not keep the
    wrong vectors, and the next `index` run embeds those faces again."""
    ix = tmp_path / "ix"
    shutil.copytree(healthy, ix)
    before = pq.read_table(healthy / FACES)
    md = pq.read_metadata(ix / FACES)
    col = md.schema.to_arrow_schema().get_field_index("embedding")
    chunk = md.row_group(0).column(col)
    data = bytearray((ix / FACES).read_bytes())
    start = chunk.dictionary_page_offset or chunk.data_page_offset  # the column chunk begins with its dictionary
    data[start + chunk.total_compressed_size // 2] ^= 0x04
    (ix / FACES).write_bytes(bytes(data))
    code, _, err = _cli(capsys, "info", str(ix))
    assert code == 2 and "faces.parquet holds a damaged page" in err and "repair" in err, err
    code, _, err = _cli(capsys, "repair", str(ix))
    assert code == 0, err
    kept = pq.read_table(ix / FACES)
    old = {f: v for f, v in zip(before["face_id"].to_pylist(), before["embedding"].to_pylist(), strict=True)}
    assert all(v == old[f] for f, v in zip(kept["face_id"].to_pylist(), kept["embedding"].to_pylist(), strict=True))
    code, _, err = _cli(capsys, "index", str(photos), "--out", str(ix), "-q")
    assert code == 0, err
    final = pq.read_table(ix / FACES)
    assert sorted(final["face_id"].to_pylist()) == sorted(before["face_id"].to_pylist())
    assert _cli(capsys, "info", str(ix), "--verify")[0] == 0
