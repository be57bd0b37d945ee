"""The index folder survives re-runs, edits, deletions and kills without losing or duplicating a face."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lookalike.index import store as store_mod
from lookalike.index.runner import IndexOptions, run_index
from lookalike.index.store import FaceStore, vectors_of
from tests.conftest import require_data


def _faces(out: Path) -> dict[str, np.ndarray]:
    """face_id -> embedding, read the way a user would (FaceStore, or plain Parquet after a clean run)."""
    t = FaceStore.open(out).faces(["face_id", "embedding"])
    return dict(zip(t["face_id"].to_pylist(), vectors_of(t, FaceStore.open(out).dim)))


def _copy_people(dst: Path, people: list[str], per: int = 3) -> Path:
    root = require_data("lfw", "images")
    for name in people:
        (dst / name).mkdir(parents=True, exist_ok=True)
        for f in sorted((root / name).glob("*.jpg"))[:per]:
            shutil.copy(f, dst / name / f.name)
    return dst


def test_rerun_embeds_nothing_and_edits_are_picked_up(tmp_path, sface, detector):
    photos = _copy_people(tmp_path / "photos", ["Tony_Blair", "Colin_Powell", "Jacques_Chirac"])
    out = tmp_path / "ix"
    first = run_index(photos, out, sface, detector)
    assert first.counts["files"] == 9 and first.files_processed == 9
    before = _faces(out)

    again = run_index(photos, out, sface, detector)
    assert again.files_processed == 0 and again.faces_added == 0 and again.files_unchanged == 9
    assert _faces(out).keys() == before.keys()

    # replace one photo with another person's: re-embedded, old rows gone, ids stay unique
    target = photos / "Tony_Blair" / "Tony_Blair_0001.jpg"
    shutil.copy(require_data("lfw", "images", "Hugo_Chavez", "Hugo_Chavez_0001.jpg"), target)
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = run_index(photos, out, sface, detector)
    assert changed.files_processed == 1
    after = _faces(out)
    assert after.keys() == before.keys()
    fid = f"{target}#0"
    assert float(after[fid] @ before[fid]) < 0.6, "the changed photo must have been re-embedded"
    ids = FaceStore.open(out).faces(["vector_id"])["vector_id"].to_numpy()
    assert len(set(ids)) == len(ids)

    # a vanished photo stays until --prune, then its faces leave the index and the FAISS index
    shutil.rmtree(photos / "Colin_Powell")
    kept = run_index(photos, out, sface, detector)
    assert kept.counts["files"] == 9
    pruned = run_index(photos, out, sface, detector, IndexOptions(prune=True))
    assert pruned.pruned_files == 3 and pruned.counts["files"] == 6
    s = FaceStore.open(out)
    assert s.load_index().ntotal == s.faces(["face_id"]).num_rows
    assert not any("Colin_Powell" in p for p in s.faces(["path"])["path"].to_pylist())


def test_index_with_other_head_is_refused(tmp_path, sface, detector, default_head):
    from lookalike.errors import HeadMismatchError

    photos = _copy_people(tmp_path / "photos", ["Tony_Blair"], per=1)
    run_index(photos, tmp_path / "ix", sface, detector)
    with pytest.raises(HeadMismatchError, match="built with head 'sface'"):
        run_index(photos, tmp_path / "ix", default_head, detector)


@pytest.mark.parametrize("crash_after", [0, 1, 2, 3])
def test_crash_inside_finalize_recovers(tmp_path, sface, detector, monkeypatch, crash_after):
    """Kill the final swap after 0..3 renames: reopening gives exactly the uninterrupted result."""
    photos = _copy_people(tmp_path / "photos", ["Tony_Blair", "Colin_Powell"], per=2)
    clean = tmp_path / "clean"
    run_index(photos, clean, sface, detector)

    out = tmp_path / "ix"
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src, dst):
        swapping = str(src).split(os.sep)[-1].startswith("finalize-")
        committing = calls["n"] == 3 and str(dst).endswith("manifest.json")  # after the 3 renames
        if swapping or committing:
            if calls["n"] >= crash_after:
                raise KeyboardInterrupt("simulated kill")
            calls["n"] += 1
        return real_replace(src, dst)

    monkeypatch.setattr(store_mod.os, "replace", flaky_replace)
    with pytest.raises(KeyboardInterrupt):
        run_index(photos, out, sface, detector)
    monkeypatch.setattr(store_mod.os, "replace", real_replace)

    got = _faces(out)  # a reader sees a consistent index even before any writer runs again
    assert sorted(got) == sorted(_faces(clean))
    rerun = run_index(photos, out, sface, detector)
    assert rerun.files_processed == 0
    assert sorted(_faces(out)) == sorted(_faces(clean))
    s = FaceStore.open(out)
    assert s.load_index().ntotal == len(got) and not (out / "finalize.json").exists()
    assert not list((out / "parts").iterdir())


@pytest.mark.slow
def test_sigkill_midway_then_rerun_loses_nothing(tmp_path):
    """A 500-photo `lookalike index` killed with SIGKILL midway, then re-run, equals an uninterrupted run."""
    root = require_data("lfw", "images")
    people = sorted(p for p in root.iterdir() if p.is_dir())
    paths = []
    for person in people:
        paths.extend(sorted(person.glob("*.jpg")))
        if len(paths) >= 500:
            break
    listing = tmp_path / "photos.txt"
    listing.write_text("\n".join(str(p) for p in paths[:500]) + "\n")
    cmd = [sys.executable, "-m", "lookalike", "index", str(listing), "--head", "sface", "-q", "--batch-size", "16"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    clean = tmp_path / "clean"
    subprocess.run([*cmd, "--out", str(clean)], check=True, env=env)

    out = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(out)], env=env)
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until some parts are committed, then kill without warning
        try:
            if len(json.loads((out / "manifest.json").read_text())["pending"]) >= 1:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    time.sleep(1.5)  # land somewhere in the middle of the next part
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "faces.parquet").exists(), "the kill came too late to test anything"

    subprocess.run([*cmd, "--out", str(out)], check=True, env=env)
    a, b = pq.read_table(clean / "faces.parquet"), pq.read_table(out / "faces.parquet")
    assert a.num_rows == b.num_rows
    va = dict(zip(a["face_id"].to_pylist(), vectors_of(a, 128)))
    vb = dict(zip(b["face_id"].to_pylist(), vectors_of(b, 128)))
    assert va.keys() == vb.keys()
    assert max(float(np.abs(va[k] - vb[k]).max()) for k in va) < 1e-5
    ids = b["vector_id"].to_numpy()
    assert len(set(ids)) == len(ids)
    ra, rb = pq.read_table(clean / "rejects.parquet"), pq.read_table(out / "rejects.parquet")
    assert sorted(ra["path"].to_pylist()) == sorted(rb["path"].to_pylist())
    assert FaceStore.open(out).load_index().ntotal == b.num_rows
