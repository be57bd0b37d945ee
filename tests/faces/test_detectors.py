"""The detector registry: every detector gives the same kind of faces (box, probability, landmarks in one
order), an index records its detector, and a query detects with the index's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from lookalike.cli.app import cli
from lookalike.errors import LookalikeError
from lookalike.eval.retrieval import leave_one_out
from lookalike.faces.detect import DETECTORS, create_detector, detector_spec
from lookalike.faces.photos import Photo, load_photo
from lookalike.search.query import Searcher
from tests.conftest import require_data


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / area) if area > 0 else 0.0


@pytest.fixture(scope="module")
def lfw_photos() -> list[np.ndarray]:
    root = require_data("lfw", "images")
    people = sorted(p for p in root.iterdir() if p.is_dir())[:400:20]
    photos = [load_photo(sorted(p.glob("*.jpg"))[0]) for p in people]
    return [p.rgb for p in photos if isinstance(p, Photo)]


def test_registry_and_unknown_name():
    assert set(DETECTORS) >= {"mtcnn", "yunet"}
    assert detector_spec("mtcnn-facenet-pytorch").name == "mtcnn", "manifests of earlier versions still read"
    with pytest.raises(LookalikeError, match="unknown detector"):
        create_detector("nope")
    for name, spec in DETECTORS.items():
        det = create_detector(name)
        assert det.name == name and det.min_prob == spec.min_prob
        assert det.params["detector"] == name
    res = CliRunner().invoke(cli, ["detectors", "--json"])
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.exit_code == 0 and {r["detector"]: r["status"] for r in rows} == {n: "ready" for n in DETECTORS}


def test_yunet_finds_mtcnn_faces_with_landmarks_in_the_same_order(lfw_photos, detector):
    yunet = create_detector("yunet")
    matched = 0
    for fm, fy in zip(detector.detect(lfw_photos), yunet.detect(lfw_photos), strict=True):
        if not fm or not fy:
            continue
        m = fm[0]
        y = max(fy, key=lambda f: _iou(f.box, m.box))
        if _iou(y.box, m.box) < 0.4:
            continue
        matched += 1
        eye_dist = float(np.linalg.norm(m.landmarks[1] - m.landmarks[0]))
        # each landmark of one detector is nearest to the same-numbered landmark of the other
        d = np.linalg.norm(y.landmarks[:, None, :] - m.landmarks[None, :, :], axis=2)
        assert (d.argmin(axis=1) == np.arange(5)).all()
        assert float(np.median(np.diag(d))) < 0.25 * eye_dist
        assert y.landmarks[0, 0] < y.landmarks[1, 0] and y.landmarks[3, 0] < y.landmarks[4, 0]
    assert matched >= 0.9 * len(lfw_photos)


def test_index_records_its_detector_and_query_uses_it(tmp_path):
    gallery = require_data("gallery", "lfw10")
    ix = tmp_path / "ix"
    res = CliRunner().invoke(cli, ["index", str(gallery), "--out", str(ix), "--head", "sface", "--detector", "yunet",
                                   "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    manifest = json.loads((ix / "manifest.json").read_text())
    assert manifest["params"]["detector"] == "yunet" and manifest["params"]["min_prob"] == 0.8
    s = Searcher(ix)
    assert s.detector.name == "yunet"
    assert leave_one_out(s)["top1"] >= 0.95
    q = require_data("lfw", "images", "Tony_Blair", "Tony_Blair_0100.jpg")
    res = CliRunner().invoke(cli, ["query", str(q), "--index", str(ix), "-k", "1", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["results"][0]["identity"] == "Tony_Blair", res.output
    # another detector into the same index is refused before any model loads; the index's own is kept
    res = CliRunner().invoke(cli, ["index", str(gallery), "--out", str(ix), "--detector", "mtcnn"])
    assert isinstance(res.exception, LookalikeError) and "built with detector 'yunet'" in str(res.exception)
    res = CliRunner().invoke(cli, ["index", str(gallery), "--out", str(ix), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["files_processed"] == 0


def test_too_small_images_never_reach_the_network():
    yunet = create_detector("yunet")
    for shape in ((1, 1, 3), (11, 11, 3), (19, 40, 3), (1, 3000, 3), (40000, 150, 3)):
        img = np.full(shape, 127, np.uint8)
        assert yunet.detect([img]) == [[]]
        assert yunet.too_small(*shape[:2])


def _lfw(name: str, n: int) -> Path:
    return require_data("lfw", "images", name, f"{name}_{n:04d}.jpg")


@pytest.mark.parametrize("detector_name", ["mtcnn", "yunet"])
def test_main_face_is_the_centred_subject_not_a_cut_off_edge_face(tmp_path, detector_name):
    """LFW photos where a large face cut off by the edge used to take the subject's label."""
    import shutil

    from lookalike.heads import create_head
    from lookalike.index.runner import run_index

    root = tmp_path / "photos"
    for name, n in (("Lindsay_Lohan", 1), ("Andre_Agassi", 1)):
        (root / name).mkdir(parents=True)
        shutil.copy(_lfw(name, n), root / name)
    run_index(root, tmp_path / "ix", create_head("sface"), create_detector(detector_name))
    t = pq.read_table(tmp_path / "ix" / "faces.parquet").to_pylist()
    mains = [f for f in t if f["is_main"]]
    assert len(mains) == 2 and len(t) >= 3, "each photo holds a second, cut-off face"
    for f in mains:
        cx = (f["box"][0] + f["box"][2]) / 2
        assert 50 < cx < 100, f"{f['path']}: main face centred at x={cx:.0f} of 150"
        assert f["identity"] in ("Lindsay_Lohan", "Andre_Agassi")
    for f in t:
        if not f["is_main"]:
            assert f["box"][0] < 0 and f["identity"] is None, "the cut-off face is indexed, unlabelled"


def test_a_labelled_photo_or_a_query_keeps_its_best_face_below_the_threshold(tmp_path):
    import shutil

    from lookalike.heads import create_head
    from lookalike.index.runner import run_index

    marilyn = _lfw("Marilyn_Monroe", 1)  # MTCNN finds her face at 0.763 only
    (tmp_path / "labelled" / "Marilyn_Monroe").mkdir(parents=True)
    shutil.copy(marilyn, tmp_path / "labelled" / "Marilyn_Monroe")
    head, det = create_head("sface"), create_detector("mtcnn")
    run_index(tmp_path / "labelled", tmp_path / "ix", head, det)
    faces = pq.read_table(tmp_path / "ix" / "faces.parquet").to_pylist()
    assert len(faces) == 1 and faces[0]["identity"] == "Marilyn_Monroe" and 0.7 <= faces[0]["prob"] < 0.9
    # unlabelled (a list file: nothing says who is in it), the threshold holds
    listing = tmp_path / "list.txt"
    listing.write_text(f"{marilyn}\n")
    run_index(listing, tmp_path / "ix2", head, det)
    rejects = pq.read_table(tmp_path / "ix2" / "rejects.parquet").to_pylist()
    assert len(rejects) == 1 and "no face" in rejects[0]["reason"]
    # as a query it is answered
    ans = Searcher(tmp_path / "ix").query_photos([marilyn], k=1, include_self=True)[0]
    assert ans.error is None and ans.results[0].identity == "Marilyn_Monroe"


def test_tight_112px_crops_align(detector):
    """DoppelVer's images are 112x112 aligned crops: detected on them, the landmarks must land back on the
    ArcFace template they were aligned to (MTCNN drifts on tight crops unless the photo is padded first)."""
    from lookalike.faces.align import ARCFACE_TEMPLATE, crop_face
    from lookalike.faces.analyzer import FaceAnalyzer

    root = require_data("lfw", "images")
    people = sorted(p for p in root.iterdir() if p.is_dir())[:1200:30]
    crops = []
    for person in people:
        photo = load_photo(sorted(person.glob("*.jpg"))[0])
        faces = FaceAnalyzer(detector).find([photo], keep_best=True)[0]
        if faces:
            crops.append(Photo(photo.stat, photo.sha256, crop_face(photo.rgb, faces[0].geometry, "arcface112")))
    assert len(crops) >= 35
    errors = []
    for faces in FaceAnalyzer(detector).find(crops, keep_best=True):
        assert faces, "a face in every aligned crop"
        errors.append(float(np.median(np.linalg.norm(faces[0].landmarks - ARCFACE_TEMPLATE, axis=1))))
    assert float(np.median(errors)) < 3.0 and max(errors) < 10.0, sorted(errors)[-5:]
