"""Fused heads: several registered heads as one (`fused:sface+dlib`), recorded and refused like any head."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lookalike.errors import HeadMismatchError, LookalikeError
from lookalike.faces.align import crop_face, split_strip
from lookalike.faces.analyzer import FaceAnalyzer
from lookalike.faces.photos import load_photo
from lookalike.heads import create_head, get_head_spec, weights_digest
from tests.conftest import build_index, require_data

pytest.importorskip("dlib", reason="dlib not installed: pip install 'lookalike[dlib]'")

FUSED = "fused:sface+dlib*2"


@pytest.fixture(scope="module")
def fused_head():
    return create_head(FUSED)


@pytest.fixture(scope="module")
def photos():
    names = [("George_W_Bush", 1), ("George_W_Bush", 2), ("Colin_Powell", 1), ("Serena_Williams", 1)]
    return [load_photo(require_data("lfw", "images", n, f"{n}_{i:04d}.jpg")) for n, i in names]


def test_names_parse_to_one_recorded_form():
    spec = get_head_spec("fused:sface*1+dlib*2.0")
    assert spec.name == FUSED and spec.dim == 256 and spec.crop == "arcface112+dlib150"
    assert spec.parts == (("sface", 1.0), ("dlib", 2.0))
    for bad, why in [
        ("fused:sface", "two or more"),
        ("fused:sface+sface", "two or more"),
        ("fused:sface*0+dlib", "bad fused head"),
        ("fused:sface+fused:dlib+x", "bad fused head"),
        ("fused:sface+nosuchhead", "unknown head 'nosuchhead'"),
    ]:
        with pytest.raises(LookalikeError, match=why) as e:
            get_head_spec(bad)
        assert "\n" not in str(e.value)


def test_fused_cosine_is_the_weighted_mean_of_the_parts(fused_head, photos, detector):
    """What the module promises: cos_fused = (1 cos_sface + 2 cos_dlib) / 3, on real faces, and unit vectors."""
    sface, dlib = create_head("sface"), create_head("dlib")
    fused = np.stack([a.faces[0].embedding for a in FaceAnalyzer(detector, fused_head).analyze(photos, face=0)])
    assert fused.shape == (4, 256) and np.allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-5)
    parts = []
    for h in (sface, dlib):
        parts.append(np.stack([a.faces[0].embedding for a in FaceAnalyzer(detector, h).analyze(photos, face=0)]))
    want = (parts[0] @ parts[0].T + 2 * (parts[1] @ parts[1].T)) / 3
    np.testing.assert_allclose(fused @ fused.T, want, atol=1e-4)
    assert fused_head.weights_sha256 == weights_digest(FUSED) != weights_digest("fused:sface+dlib")


def test_strip_holds_each_parts_crop(photos, detector):
    face = FaceAnalyzer(detector, crop="arcface112").analyze(photos[:1], face=0)[0].faces[0]
    strip = crop_face(photos[0].rgb, face.geometry, "arcface112+dlib150")
    assert strip.shape == (150, 262, 3)
    a, b = split_strip(strip[None], "arcface112+dlib150")
    np.testing.assert_array_equal(a[0], crop_face(photos[0].rgb, face.geometry, "arcface112"))
    np.testing.assert_array_equal(b[0], crop_face(photos[0].rgb, face.geometry, "dlib150"))


def test_fused_index_queries_and_refuses_other_weighting(tmp_path, fused_head, detector):
    from click.testing import CliRunner

    from lookalike.cli.app import cli
    from lookalike.search.query import Searcher

    gallery = require_data("gallery", "lfw10")
    ix = build_index(tmp_path, gallery, fused_head, detector)
    manifest = json.loads((ix / "manifest.json").read_text())
    assert manifest["head"] == FUSED and manifest["dim"] == 256
    photos = sorted(gallery.rglob("*.jpg"))[5::10]
    answers = Searcher(ix).query_photos([str(p) for p in photos], k=1)
    assert [a.results[0].identity for a in answers] == [p.parent.name for p in photos]
    Searcher(ix, head="fused:sface*1.0+dlib*2", load_head=False)  # the same head, written otherwise: accepted
    with pytest.raises(HeadMismatchError):  # the same parts weighted otherwise give other vectors
        Searcher(ix, head="fused:sface+dlib")
    r = CliRunner().invoke(cli, ["index", str(gallery), "--out", str(ix), "--head", "fused:sface+dlib", "-q"])
    assert r.exit_code != 0 and "was built with head 'fused:sface+dlib*2'" in str(r.exception)


def test_benchmarks_join_the_parts_caches_into_the_fused_vectors(tmp_path, fused_head, photos):
    """`embed_photos` of a fused head reads its parts' cache indexes (no fused index is built) and gives the
    vectors the fused head itself gives (with the same detector: the benchmarks' default)."""
    from lookalike.eval.embed import embed_photos
    from lookalike.faces.detect import create_detector

    detector = create_detector()
    paths = [p.stat.path for p in photos]
    pv = embed_photos(paths, FUSED, tmp_path / f"bench-{FUSED}-yunet")
    assert sorted(d.name for d in tmp_path.iterdir()) == ["bench-dlib-yunet", "bench-sface-yunet"]
    direct = np.stack([a.faces[0].embedding for a in FaceAnalyzer(detector, fused_head).analyze(photos, face=0)])
    rows = pv.rows(paths)
    assert pv.found.all() and pv.vectors.shape == (4, 256)
    np.testing.assert_allclose(pv.vectors[rows], direct, atol=1e-5)
