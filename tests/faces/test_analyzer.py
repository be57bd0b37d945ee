"""One face-analysis path: index, query, the benchmarks and the learned-similarity crops get the same face,
crop and vector for a photo, and a query's face is never detected twice."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq

from lookalike.eval.embed import embed_photos
from lookalike.faces.analyzer import FaceAnalyzer
from lookalike.faces.detect import create_detector
from lookalike.heads import create_head
from lookalike.index.runner import run_index
from lookalike.search.query import Searcher
from lookalike.similarity.facecrops import main_face_crops
from tests.conftest import require_data


def test_every_verb_gets_the_same_face_and_vector(tmp_path, monkeypatch):
    lfw = require_data("lfw", "images")
    root = tmp_path / "photos"
    for name in ("Tony_Blair", "Colin_Powell", "Lindsay_Lohan"):
        (root / name).mkdir(parents=True)
        for f in sorted((lfw / name).glob("*.jpg"))[:2]:
            shutil.copy(f, root / name / f.name)
    head, det = create_head("sface"), create_detector("mtcnn")
    run_index(root, tmp_path / "ix", head, det)
    photo = str(root / "Lindsay_Lohan" / "Lindsay_Lohan_0001.jpg")  # two faces: the main one must agree
    t = pq.read_table(tmp_path / "ix" / "faces.parquet").to_pylist()
    stored = next(f for f in t if f["path"] == photo and f["is_main"])

    ans = Searcher(tmp_path / "ix").query_photos([photo], k=1, include_self=True)[0]
    assert ans.error is None and ans.face is not None
    assert np.allclose(ans.face.box, stored["box"], atol=1e-4)
    assert float(ans.face.embedding @ np.asarray(stored["embedding"])) > 0.99999

    bench = embed_photos([photo], "sface", tmp_path / "bench", detector="mtcnn")
    assert float(bench.vectors[0] @ np.asarray(stored["embedding"])) > 0.99999

    crops = main_face_crops([photo], head.crop, det)
    assert np.array_equal(crops.crops[0], ans.face.crop)

    # --rerank metric takes the answer's own crop: no detector runs again
    calls = {"find": 0}
    real = FaceAnalyzer.find

    def counting(self, *a, **k):
        calls["find"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(FaceAnalyzer, "find", counting)
    from lookalike.search.rerank import MetricReranker, rerank_answers

    monkeypatch.setattr(MetricReranker, "__init__", lambda self, searcher: None)
    seen = []

    def rerank(self, crop, sha, results, k, ident, source):
        seen.append(crop)
        return results, "x"

    monkeypatch.setattr(MetricReranker, "rerank", rerank)
    s = Searcher(tmp_path / "ix")
    answers = s.query_photos([photo], k=3)
    assert calls["find"] == 1
    rerank_answers(s, answers, 3)
    assert calls["find"] == 1 and len(seen) == 1 and np.array_equal(seen[0], answers[0].face.crop)
