"""FaceNet in onnxruntime (the graph built from its weights without torch) gives torch's vectors on real faces,
is kept beside the weights, and is what a CPU without native bf16 runs; a query then needs no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lookalike.errors import LookalikeError
from tests.conftest import require_data

from .test_facenet_convert import PHOTOS, REFERENCE, _face_crop


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    root = require_data("lfw", "images")
    return np.stack([_face_crop(root / p) for p in PHOTOS])


def _head(monkeypatch, engine: str):
    from lookalike.heads import create_head

    monkeypatch.setenv("LOOKALIKE_FACENET_ENGINE", engine)
    return create_head("facenet-casia", device="cpu", precision="fp32")


def test_onnxruntime_gives_torchs_vectors(monkeypatch, faces) -> None:
    ort, pt = _head(monkeypatch, "onnxruntime"), _head(monkeypatch, "torch")
    assert (ort.engine, pt.engine) == ("onnxruntime", "torch")
    a, b = ort.embed(faces), pt.embed(faces)
    assert (a * b).sum(axis=1).min() >= 0.99999
    assert (a * np.load(REFERENCE)).sum(axis=1).min() >= 0.99999  # and the reference conversion's
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    maps = ort.embed_with_maps(faces[:2])[1]  # the torch network still serves feature maps, loaded on demand
    assert maps.shape == (2, 1792, 3, 3)


def test_the_graph_is_kept_beside_the_weights_and_rebuilt_when_they_change(monkeypatch, tmp_path) -> None:
    import shutil

    from lookalike import config
    from lookalike.heads.facenet import CASIA_FILE, onnx_graph
    from lookalike.weights import sha256_file

    src = config.weights_dir() / CASIA_FILE
    if not src.exists():
        _head(monkeypatch, "torch")  # makes the weights
    wdir = tmp_path / "weights"
    wdir.mkdir()
    shutil.copy(config.weights_dir() / CASIA_FILE, wdir / CASIA_FILE)
    path = wdir / CASIA_FILE
    sha = sha256_file(path)
    first = onnx_graph(path, sha, quiet=True)
    graph = path.with_suffix(".onnx")
    assert graph.exists() and json.loads(graph.with_name(graph.name + ".json").read_text())["weights_sha256"] == sha
    stamp = graph.stat().st_mtime_ns
    assert onnx_graph(path, sha, quiet=True) == first and graph.stat().st_mtime_ns == stamp  # reused
    graph.write_bytes(b"damaged")
    assert onnx_graph(path, sha, quiet=True) == first  # a damaged copy is made again


def test_a_bad_engine_is_one_line(monkeypatch) -> None:
    from lookalike.heads.facenet import choose_engine

    monkeypatch.setenv("LOOKALIKE_FACENET_ENGINE", "tensorrt")
    with pytest.raises(LookalikeError, match="use one of auto, torch, onnxruntime"):
        choose_engine("cpu")
    monkeypatch.setenv("LOOKALIKE_FACENET_ENGINE", "auto")
    assert choose_engine("cuda") == "torch"


def test_an_onnxruntime_query_imports_no_torch(tmp_path) -> None:
    """The default path (yunet, FaceNet) with the onnxruntime engine: indexed, then answered without torch."""
    import os
    import shutil

    src = require_data("gallery", "lfw10")
    for person in ("Tony_Blair", "Colin_Powell"):
        shutil.copytree(src / person, tmp_path / "photos" / person)
    env = {**os.environ, "LOOKALIKE_FACENET_ENGINE": "onnxruntime"}
    made = subprocess.run([sys.executable, "-m", "lookalike", "index", str(tmp_path / "photos"), "--out",
                           str(tmp_path / "ix"), "-q", "--workers", "0"], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    photo = str(require_data("lfw", "images", "Tony_Blair", "Tony_Blair_0020.jpg"))
    code = (
        "import sys, json; from lookalike.search.query import Searcher; "
        f"s = Searcher({str(tmp_path / 'ix')!r}); "
        f"a = s.query_photos([{photo!r}], k=1)[0]; "
        "print(json.dumps({'engine': s.head.engine, 'who': a.results[0].identity, 'torch': 'torch' in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"engine": "onnxruntime", "who": "Tony_Blair", "torch": False}, got


def test_the_engine_is_the_one_measured_faster_here(monkeypatch, tmp_path) -> None:
    """`weights import` times both engines on this CPU and keeps it beside the weights; auto follows the record
    for this machine (another machine's entry, or none, leaves the rule)."""
    import shutil

    from lookalike import config
    from lookalike.heads import engine_choice
    from lookalike.heads.facenet import CASIA_FILE, choose_engine, cpu_threads, measure_engines
    from lookalike.weights import sha256_file

    if not (config.weights_dir() / CASIA_FILE).exists():
        _head(monkeypatch, "torch")  # makes the weights
    wdir = tmp_path / "weights"
    wdir.mkdir()
    shutil.copy(config.weights_dir() / CASIA_FILE, wdir / CASIA_FILE)
    monkeypatch.setenv("LOOKALIKE_FACENET_ENGINE", "auto")
    rule = choose_engine("cpu", wdir)  # nothing measured yet
    entry = measure_engines(wdir / CASIA_FILE, sha256_file(wdir / CASIA_FILE))
    assert {"torch fp32", "onnxruntime"} <= set(entry["faces_per_s"]) and entry["chosen"] in ("torch", "onnxruntime")
    assert all(v > 0 for v in entry["faces_per_s"].values())
    assert choose_engine("cpu", wdir) == entry["chosen"]
    record = wdir / engine_choice.RECORD
    rec = json.loads(record.read_text())
    key = engine_choice.machine_key(cpu_threads())
    other = "torch" if entry["chosen"] == "onnxruntime" else "onnxruntime"
    rec["machines"][key]["chosen"] = other  # as if the other had been faster here
    record.write_text(json.dumps(rec))
    assert choose_engine("cpu", wdir) == other
    rec["machines"] = {"another CPU | avx512f | 64 threads": {"chosen": other}}
    record.write_text(json.dumps(rec))
    assert choose_engine("cpu", wdir) == rule
