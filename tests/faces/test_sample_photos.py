"""The faces room on photos the installed packages ship (no data folder): every sample face is found and cropped,
and a photo without a usable face says why, as a kind a caller can branch on."""

from __future__ import annotations

import numpy as np

from lookalike.faces.analyzer import FaceAnalyzer, FaceFailure
from lookalike.faces.photos import Photo, load_photo, photo_from_array
from lookalike.faces.scan import scan_source
from tests.conftest import sample_faces, write_sample_photos


def test_each_sample_face_is_found_and_cropped(sface, detector):
    analyzer = FaceAnalyzer(detector, sface)
    photos = [photo_from_array(rgb, name) for name, rgb in sample_faces().items()]
    assert all(isinstance(p, Photo) for p in photos)
    for a in analyzer.analyze(photos):
        assert a.error is None and len(a.faces) == 1, a.photo.stat.path
        face = a.faces[0]
        x1, y1, x2, y2 = face.box
        h, w = a.photo.rgb.shape[:2]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and (x2 - x1) > 50  # a real face, inside the photo
        assert face.crop.shape == (112, 112, 3) and abs(float(np.linalg.norm(face.embedding)) - 1) < 1e-5


def test_a_photo_without_a_usable_face_says_which_kind(sface, detector, tmp_path):
    root = write_sample_photos(tmp_path / "photos")
    analyzer = FaceAnalyzer(detector, sface)
    coffee = load_photo(root / "notes" / "coffee.jpg")
    tiny = photo_from_array(np.zeros((8, 8, 3), np.uint8), "tiny")
    hopper = load_photo(root / "Grace_Hopper" / "0.jpg")
    none, small = analyzer.analyze([coffee, tiny])
    assert none.error == FaceFailure(FaceFailure.NO_FACE) and str(none.error) == "no face found"
    assert small.error.kind == FaceFailure.TOO_SMALL and "too small: 8x8" in str(small.error)
    (third,) = analyzer.analyze([hopper], face=2)
    assert (third.error.kind, third.error.asked, third.error.faces) == (FaceFailure.NO_SUCH_FACE, 2, 1)


def test_a_sample_folder_is_scanned_with_its_people(tmp_path):
    root = write_sample_photos(tmp_path / "photos")
    (root / "notes" / "readme.txt").write_text("not a photo")
    scan = scan_source(root)
    assert scan.kind == "folder" and len(scan.photos) == 10 and scan.skipped == 1
    assert {p.rsplit("/", 2)[1] for p in scan.photos} == {"Eileen_Collins", "Grace_Hopper", "Cameraman", "notes"}
