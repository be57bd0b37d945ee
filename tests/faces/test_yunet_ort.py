"""The yunet detector's onnxruntime engine (the CPU default) against OpenCV's FaceDetectorYN on real photos: the
same faces, boxes, landmarks and scores, and worker processes keep it on one thread."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.faces.photos import load_photo
from tests.conftest import require_data

pytest.importorskip("onnxruntime", reason="onnxruntime not installed")


def test_the_default_cpu_engine_is_onnxruntime():
    from lookalike.faces.detect import create_detector

    assert create_detector("yunet").engine == "onnxruntime"
    assert create_detector("yunet", min_prob=0.9).engine == "onnxruntime"


def test_the_engine_setting(monkeypatch):
    from lookalike.errors import LookalikeError
    from lookalike.faces.yunet import YuNetDetector

    monkeypatch.setenv("LOOKALIKE_YUNET_ENGINE", "opencv")
    assert YuNetDetector().engine == "opencv"
    assert YuNetDetector(engine="onnxruntime").engine == "onnxruntime"  # an explicit engine wins
    monkeypatch.setenv("LOOKALIKE_YUNET_ENGINE", "tensorrt")
    with pytest.raises(LookalikeError, match="onnxruntime or opencv"):
        YuNetDetector()


def test_same_faces_as_opencv_on_real_photos():
    from lookalike.faces.yunet import YuNetDetector, box_iou

    opencv, ort = YuNetDetector(engine="opencv"), YuNetDetector()
    assert (opencv.engine, ort.engine) == ("opencv", "onnxruntime")
    paths = sorted(require_data("group-photos").iterdir()) + sorted(require_data("lfw", "images").glob("A*/*.jpg"))[:12]
    # sizes that are not multiples of 32, a large photo (the 640 px pass too), a tiny one
    images = [load_photo(p).rgb for p in paths]
    big = images[0]
    images.append(np.ascontiguousarray(np.repeat(np.repeat(big, 3, axis=0), 3, axis=1)[:1700, :1300]))
    images.append(np.ascontiguousarray(images[4][:70, :90]))
    many = 0
    for i, (a, b) in enumerate(zip(opencv.detect_all(images), ort.detect_all(images), strict=True)):
        assert len(a) == len(b), i
        many = max(many, len(a))
        for f, g in zip(a, b, strict=True):  # same order too: best first
            assert box_iou(f.box, g.box) > 0.999, i
            assert abs(f.prob - g.prob) < 1e-4, i
            np.testing.assert_allclose(f.landmarks, g.landmarks, atol=0.05)
    assert many >= 4  # the many-people selfie was looked at


def test_a_worker_runs_it_on_one_thread(monkeypatch):
    """Worker processes are the parallelism: their detector must not start a thread per core."""
    import cv2

    from lookalike.faces.yunet import YuNetDetector

    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)  # what ingest/distribute.py's worker start does first
        det = YuNetDetector()
        assert det._engine.session.get_session_options().intra_op_num_threads == 1
    finally:
        cv2.setNumThreads(before)


def test_a_damaged_model_file_is_one_line(tmp_path):
    from lookalike.errors import LookalikeError
    from lookalike.faces.yunet_ort import OrtYuNet

    bad = tmp_path / "yunet.onnx"
    bad.write_bytes(b"\x08\x07not an onnx graph" * 10)
    with pytest.raises(LookalikeError) as e:
        OrtYuNet(bad, 1, 0.6, 0.3, 5000)
    assert "\n" not in str(e.value) and "yunet" in str(e.value)


def test_without_a_working_onnxruntime_it_falls_back_to_opencv(monkeypatch):
    from lookalike.faces import yunet_ort
    from lookalike.faces.yunet import YuNetDetector

    monkeypatch.setattr(yunet_ort, "available", lambda: False)  # not installed, or fails to import
    det = YuNetDetector()
    assert det.engine == "opencv"
    assert det.detect_all([np.zeros((64, 64, 3), np.uint8)]) == [[]]


def test_a_sliver_of_a_photo_is_not_an_error():
    """A 1 x 5000 image downscaled for detection keeps a pixel of height (no zero-sized resize)."""
    from lookalike.faces.yunet import YuNetDetector

    det = YuNetDetector()
    scaled, _ = det.downscaled([np.zeros((1, 5000, 3), np.uint8)])
    assert scaled[0].shape == (1, 1600, 3)
    assert det.detect_all([np.zeros((1, 5000, 3), np.uint8)]) == [[]]


def test_the_folded_graph_is_cached_so_a_query_needs_no_onnx(tmp_path, monkeypatch):
    """The first detector folds the graph (onnx) and caches it in the weights directory; a fresh process then
    detects without importing onnx (1.2-1.8 s of a cold query); a tampered cache is folded again, not trusted."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lookalike.faces import yunet_ort

    if not yunet_ort.available():
        pytest.skip("onnxruntime or onnx is not installed")
    weights = tmp_path / "weights"
    code = (
        "import sys, numpy as np\n"
        "from lookalike.faces.detect import create_detector\n"
        "from tests.conftest import sample_faces\n"
        "d = create_detector('yunet')\n"
        "faces = d.detect([sample_faces()['Grace_Hopper']])[0]\n"
        "print(d.engine, 'onnx' in sys.modules, len(faces), round(float(faces[0].prob), 4))\n"
    )
    env = {**os.environ, "LOOKALIKE_WEIGHTS": str(weights), "LOOKALIKE_YUNET_ENGINE": "onnxruntime"}

    def run() -> list[str]:
        repo = Path(__file__).resolve().parents[2]  # `tests.conftest` importable
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=repo)
        assert r.returncode == 0, r.stderr[-800:]
        return r.stdout.split()

    first = run()
    cached = list((weights / "cache").glob("yunet-*-folded.onnx"))
    assert first[:2] == ["onnxruntime", "True"] and len(cached) == 1  # folded with onnx, then kept
    second = run()
    assert second[:2] == ["onnxruntime", "False"] and second[2:] == first[2:]  # no onnx, the same face
    cached[0].write_bytes(cached[0].read_bytes()[:-100] + b"\0" * 100)  # damaged on disk
    third = run()
    assert third[:2] == ["onnxruntime", "True"] and third[2:] == first[2:]  # folded again
    digest = cached[0].with_name(cached[0].name + ".sha256")
    digest.write_bytes(b"\xff\xfe not a digest")  # a digest file that is not even text: folded again, no traceback
    fourth = run()
    assert fourth[:2] == ["onnxruntime", "True"] and fourth[2:] == first[2:]
