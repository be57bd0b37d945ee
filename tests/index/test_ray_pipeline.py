"""The Ray Data entry point (`pipelines/ray_index.py`) writes the index `lookalike index` writes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lookalike.index.runner import run_index
from lookalike.index.store import FaceStore, vectors_of
from tests.conftest import require_data

ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[ray]')")
ray_index = pytest.importorskip("pipelines.ray_index")


def test_ray_job_matches_the_cli(tmp_path, sface, detector):
    photos = tmp_path / "photos"
    root = require_data("lfw", "images")
    for name in ("Tony_Blair", "Hugo_Chavez", "Serena_Williams"):
        (photos / name).mkdir(parents=True)
        for f in sorted((root / name).glob("*.jpg"))[:4]:
            shutil.copy(f, photos / name / f.name)
    (photos / "Tony_Blair" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    run_index(photos, tmp_path / "cli", sface, detector)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        report = ray_index.build(photos, tmp_path / "ray", "sface", detector=detector.name, actors=1, batch_size=4)
    finally:
        ray.shutdown()
    a, b = FaceStore.open(tmp_path / "cli"), FaceStore.open(tmp_path / "ray")
    assert report["counts"] == a.manifest["counts"]
    fa, fb = a.faces(), b.faces()
    va = dict(zip(fa["face_id"].to_pylist(), vectors_of(fa, 128)))
    vb = dict(zip(fb["face_id"].to_pylist(), vectors_of(fb, 128)))
    assert va.keys() == vb.keys()
    # Same faces, same vectors up to float noise: MTCNN and the head run on batches of other sizes here (4 vs the
    # CLI's), which moves landmarks by a hair and, through sface's int8 weights, vector elements by up to ~2e-4.
    assert min(float(va[k] @ vb[k]) for k in va) > 0.9999
    ba = dict(zip(fa["face_id"].to_pylist(), fa["box"].to_pylist()))
    bb = dict(zip(fb["face_id"].to_pylist(), fb["box"].to_pylist()))
    assert max(float(np.abs(np.subtract(ba[k], bb[k])).max()) for k in ba) < 0.5
    assert dict(zip(fa["face_id"].to_pylist(), fa["identity"].to_pylist())) == dict(
        zip(fb["face_id"].to_pylist(), fb["identity"].to_pylist())
    )
    assert b.rejects()["path"].to_pylist() == a.rejects()["path"].to_pylist()
    assert b.load_index().ntotal == fb.num_rows
