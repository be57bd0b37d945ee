"""Ingestion: worker processes give the index the in-process path gives; a large JPEG decoded reduced keeps
the file's coordinates and the face's vector; bf16 vectors agree with fp32."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.faces.analyzer import FaceAnalyzer
from lookalike.faces.detect import create_detector
from lookalike.faces.photos import Photo, load_photo
from lookalike.heads import create_head
from lookalike.index.runner import IndexOptions, run_index
from lookalike.index.store import FaceStore, vectors_of
from tests.conftest import require_data


def _rows(ix):
    t = FaceStore.open(ix).faces()
    vectors = vectors_of(t, t.schema.field("embedding").type.list_size)
    rows = {r["face_id"]: r for r in t.select(["face_id", "box", "identity", "is_main"]).to_pylist()}
    return rows, dict(zip(t["face_id"].to_pylist(), vectors))


def test_worker_processes_index_what_one_process_does(tmp_path, sface):
    lfw = require_data("lfw", "images")
    root = tmp_path / "photos"
    for name in ("Tony_Blair", "Lindsay_Lohan", "Marilyn_Monroe", "Andre_Agassi"):
        (root / name).mkdir(parents=True)
        for f in sorted((lfw / name).glob("*.jpg"))[:5]:
            shutil.copy(f, root / name / f.name)
    (root / "Tony_Blair" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    (root / "Tony_Blair" / "notes.jpg").write_text("not a photo")
    det = create_detector("mtcnn")  # the slower detector: its worker imports torch, as a GPU box's would
    one = run_index(root, tmp_path / "one", sface, det, IndexOptions(workers=0))
    many = run_index(root, tmp_path / "many", sface, det, IndexOptions(workers=2, batch_files=4))
    assert many.workers == 2 and one.workers == 0
    assert (many.faces_added, many.rejects_added) == (one.faces_added, one.rejects_added)
    rows1, v1 = _rows(tmp_path / "one")
    rows2, v2 = _rows(tmp_path / "many")
    assert rows1.keys() == rows2.keys()
    for fid, r in rows1.items():
        assert r["identity"] == rows2[fid]["identity"] and r["is_main"] == rows2[fid]["is_main"]
        assert np.allclose(r["box"], rows2[fid]["box"], atol=1e-3)
        assert float(v1[fid] @ v2[fid]) > 0.99999
    rejects = FaceStore.open(tmp_path / "many").rejects().to_pylist()
    reasons = {r["path"].rsplit("/", 1)[1]: r["reason"] for r in rejects}
    assert reasons["broken.jpg"].startswith("truncated or corrupt image")
    assert "notes.jpg" in reasons
    # Marilyn_Monroe_0001's only face is below 0.9: labelled, it keeps its best face in workers too
    assert any(fid.endswith("Marilyn_Monroe_0001.jpg#0") for fid in rows2)
    # ids follow the files' order either way
    assert FaceStore.open(tmp_path / "many").faces()["vector_id"].to_pylist() == sorted(
        FaceStore.open(tmp_path / "many").faces()["vector_id"].to_pylist()
    )


def test_a_large_jpeg_is_decoded_reduced_in_the_files_coordinates(tmp_path, sface):
    lfw = require_data("lfw", "images")
    src = Image.open(sorted((lfw / "Colin_Powell").glob("*.jpg"))[0]).convert("RGB")
    big = src.resize((3600, 3600), Image.Resampling.BICUBIC)
    path = tmp_path / "big.jpg"
    big.save(path, quality=92)
    det = create_detector("yunet")
    whole = load_photo(path)
    reduced = load_photo(path, draft_side=det.max_side)
    assert isinstance(whole, Photo) and isinstance(reduced, Photo)
    assert reduced.scale == 0.5 and reduced.rgb.shape[:2] == (1800, 1800)
    assert reduced.size == whole.size == (3600, 3600)
    analyzer = FaceAnalyzer(det, sface)
    a, b = analyzer.analyze([whole, reduced])
    assert a.faces and b.faces
    # boxes in the file's pixels either way (the whole photo is detected on a 1600 px copy too)
    assert np.abs(a.faces[0].box - b.faces[0].box).max() < 3600 * 0.01
    assert float(a.faces[0].embedding @ b.faces[0].embedding) > 0.98
    # a photo under twice the side is decoded whole
    small = tmp_path / "small.jpg"
    src.resize((3000, 3000)).save(small, quality=92)
    assert load_photo(small, draft_side=det.max_side).scale == 1.0


def test_bf16_vectors_agree_with_fp32():
    lfw = require_data("lfw", "images")
    photos = [load_photo(f) for f in sorted(lfw.glob("A*/*.jpg"))[:24]]
    fp32 = create_head("facenet-casia", precision="fp32")
    bf16 = create_head("facenet-casia", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    analyzed = FaceAnalyzer(create_detector("yunet"), fp32).analyze([p for p in photos if isinstance(p, Photo)])
    crops = np.stack([a.faces[0].crop for a in analyzed if a.faces])
    cos = np.sum(fp32.embed(crops) * bf16.embed(crops), axis=1)
    assert cos.min() >= 0.999, cos.min()
    with pytest.raises(Exception, match="unknown precision"):
        create_head("facenet-casia", precision="fp8")


def test_progress_in_a_log_is_lines_not_redraws(tmp_path):
    from click.testing import CliRunner

    from lookalike.cli.app import cli

    photos = tmp_path / "photos"
    photos.mkdir()
    for f in sorted(require_data("lfw", "images", "Tony_Blair").glob("*.jpg"))[:3]:
        shutil.copy(f, photos / f.name)
    res = CliRunner().invoke(cli, ["index", str(photos), "--out", str(tmp_path / "ix"), "--head", "sface"])
    assert res.exit_code == 0, res.output
    assert "\r" not in res.stderr  # stderr is not a terminal here, as in a log file or CI
    assert "index ix: 3/3 photos in" in res.stderr and "faces=" in res.stderr


def test_a_yunet_worker_does_not_load_torch():
    """A YuNet worker holds OpenCV only: torch would add ~490 MB to each of up to 16 workers."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from lookalike.faces.detect import create_detector\n"
        "from lookalike.ingest.distribute import _start_worker\nfrom lookalike.ingest.find import FindSettings\n"
        "d = create_detector('yunet', device='cpu')\n"
        "_start_worker(FindSettings(d.params, 'facenet160', 10**8, 10**8, 10**8, d.max_side))\n"
        "print('torch' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-500:]
    assert r.stdout.strip() == "False"


def test_workers_by_machine_and_photo_size(monkeypatch):
    """Workers where they were measured to pay: many cores; on 2-3 cores only for large photos (detection-bound),
    never for a short run; a head that embeds in the workers gets one per CPU."""
    from lookalike.ingest import distribute as ingest

    def on(cpus: int) -> None:
        monkeypatch.setattr(ingest.os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)

    on(2)
    assert ingest.default_workers(3000, median_bytes=9_000) == 0  # LFW's 150 px photos
    assert ingest.default_workers(3000, median_bytes=700_000) == 2  # 1-12 MP photos
    assert ingest.default_workers(50, median_bytes=700_000) == 0
    assert ingest.default_workers(500, embeds_in_workers=True) == 2
    on(1)
    assert ingest.default_workers(3000, median_bytes=700_000) == 0
    on(16)
    assert ingest.default_workers(3000, median_bytes=9_000) == 15


def test_the_plan_knows_the_median_photo_size(tmp_path):
    from lookalike.index.runner import plan
    from lookalike.index.store import FaceStore

    for i, n in enumerate([10, 20, 300_000, 400_000, 500_000]):
        (tmp_path / "src").mkdir(exist_ok=True)
        (tmp_path / "src" / f"p{i}.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * n)
    with FaceStore.writer(tmp_path / "ix", "sface", 128, "0" * 64, {}) as store:
        assert plan(tmp_path / "src", store).todo_median_bytes == 300_003


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
def test_workers_end_when_index_is_killed(tmp_path):
    """`kill -9` of `lookalike index --workers 2` leaves no worker (nor multiprocessing's tracker) behind."""
    import signal
    import subprocess
    import sys
    import time

    src = require_data("gallery", "lfw10")
    proc = subprocess.Popen([sys.executable, "-m", "lookalike", "index", str(src), "--out", str(tmp_path / "ix"),
                             "--workers", "2", "-q"], stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        kids: list[int] = []
        while len(kids) < 3 and time.monotonic() < deadline and proc.poll() is None:  # 2 workers + the tracker
            kids = _children(proc.pid)
            time.sleep(0.2)
        assert len(kids) >= 2, f"the workers never started: {kids}"
        time.sleep(1.0)  # the workers are running their initializer, or finding faces
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [k for k in kids if _alive(k)], "processes of the killed run are still alive"
    finally:
        if proc.poll() is None:
            proc.kill()
