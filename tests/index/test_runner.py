"""One runner, three distributors: this process, worker processes and Ray actors give byte-identical faces rows
(ids, boxes, landmarks, vectors) for a folder of large JPEGs, and keep an existing index's own thresholds."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lookalike.index.runner import IndexOptions, run_index
from lookalike.index.settings import resolve
from lookalike.index.store import FaceStore
from lookalike.ingest.distribute import Inline, ProcessPool
from tests.conftest import write_sample_photos

COLUMNS = ["vector_id", "face_id", "path", "sha256", "face_index", "is_main", "box", "landmarks", "prob", "identity"]


def _rows(ix):
    t = FaceStore.open(ix).faces().sort_by("vector_id")
    return t.select(COLUMNS).to_pylist(), np.asarray(t["embedding"].to_pylist(), np.float32).tobytes()


@pytest.fixture()
def engine_onnxruntime(monkeypatch):
    # the ONNX Runtime engine gives a face the same vector in any batch (tested), torch bf16 need not
    monkeypatch.setenv("LOOKALIKE_FACENET_ENGINE", "onnxruntime")


def test_three_distributors_give_byte_identical_rows(tmp_path, engine_onnxruntime):
    photos = write_sample_photos(tmp_path / "photos", side=2800)  # large JPEGs: decoded reduced (draft)
    (photos / "Cameraman" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    # an existing index with thresholds other than the defaults, built from the first photo of each person
    later = tmp_path / "later"
    for f in sorted(photos.rglob("*.jpg")):
        if f.name != "0.jpg":
            (later / f.parent.name).mkdir(parents=True, exist_ok=True)
            f.rename(later / f.parent.name / f.name)
    base = tmp_path / "base"
    settings = resolve(photos, out=base, detector="yunet", min_prob=0.6, min_face=40)
    head, detector = settings.load("cpu")
    run_index(photos, base, head, detector)
    for f in sorted(later.rglob("*.jpg")):
        f.rename(photos / f.parent.name / f.name)
    # add the whole folder with each distributor, each to its own copy of that index
    runs = {
        "inline": Inline(),
        "pool": ProcessPool(2, chunk=2),
    }
    try:
        import ray

        from lookalike.ingest.distribute import RayData

        runs["ray"] = RayData(concurrency=1, batch_size=3)
    except ImportError:
        pass
    out = {}
    for name, distributor in runs.items():
        ix = tmp_path / name
        shutil.copytree(base, ix)
        s = resolve(photos, out=ix)
        assert (s.detector, s.min_prob, s.min_face) == ("yunet", 0.6, 40)  # the index's own, not the defaults
        h, d = s.load("cpu")
        assert (d.min_prob, d.min_face_size) == (0.6, 40)
        if name == "ray":
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     runtime_env={"env_vars": {"LOOKALIKE_FACENET_ENGINE": "onnxruntime"}})  # fmt: skip
        try:
            report = run_index(photos, ix, h, d, IndexOptions(batch_files=4), distributor=distributor)
        finally:
            distributor.close()
            if name == "ray":
                ray.shutdown()
        assert report.distributor == distributor.name
        assert report.files_processed == 8  # 6 new photos, the broken file and coffee; the first three unchanged
        out[name] = _rows(ix)
    rows, vectors = out["inline"]
    assert len(rows) >= 9 and {r["identity"] for r in rows if r["is_main"]} == {
        "Eileen_Collins",
        "Grace_Hopper",
        "Cameraman",
    }
    for name, (r, v) in out.items():
        assert r == rows, name  # ids, paths, boxes, landmarks, probabilities, labels: equal
        assert v == vectors, name  # vectors: equal to the byte
    reasons = {
        r["path"].rsplit("/", 1)[1]: r["reason"] for r in FaceStore.open(tmp_path / "pool").rejects().to_pylist()
    }
    assert reasons["broken.jpg"].startswith("truncated or corrupt image")
    assert reasons["coffee.jpg"].startswith("no face found (probability >= 0.6)")
