"""`lookalike verify A B` as a user runs it: exit 0 for the same person, 1 for two people, 2 for a bad photo; the
measured thresholds behind it; the calibration on every pair of a labelled set."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from lookalike.cli.app import cli
from lookalike.eval.calibrate import all_pairs, operating_points
from lookalike.faces.analyzer import FaceAnalyzer
from lookalike.heads.calibration import FMRS, same_person
from lookalike.search.verify import verify
from tests.conftest import require_data


def _lfw(name: str, i: int):
    return require_data("lfw", "images", name, f"{name}_{i:04d}.jpg")


def test_verify_exit_status_says_same_or_different():
    bush1, bush2, powell = _lfw("George_W_Bush", 1), _lfw("George_W_Bush", 2), _lfw("Colin_Powell", 1)
    same = CliRunner().invoke(cli, ["verify", str(bush1), str(bush2), "--head", "sface", "--json"])
    assert same.exit_code == 0, same.output
    v = json.loads(same.stdout)
    assert v["same_person"] is True and v["score"] >= v["threshold"]
    point = same_person("sface", "yunet")
    assert v["threshold"] == point.threshold and v["fmr"] == point.fmr and v["tmr"] == point.tmr
    assert len(v["face_a"]) == 4 and len(v["face_b"]) == 4
    other = CliRunner().invoke(cli, ["verify", str(bush1), str(powell), "--head", "sface"])
    assert other.exit_code == 1
    assert other.stdout.startswith("different people: cosine ") and "of different-person pairs of LFW" in other.stdout
    # the caller's own threshold decides instead: 1.0 is out of reach even for the same person
    own = CliRunner().invoke(cli, ["verify", str(bush1), str(bush2), "--head", "sface", "--threshold", "1.0", "--json"])
    assert own.exit_code == 1 and json.loads(own.stdout)["threshold"] == 1.0 and "fmr" not in json.loads(own.stdout)


def test_verify_a_bad_photo_is_one_line_and_exit_2(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 cut short")
    r = subprocess.run(
        [sys.executable, "-m", "lookalike", "verify", str(_lfw("George_W_Bush", 1)), str(broken), "--head", "sface"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "broken.jpg" in r.stderr
    assert r.stderr.startswith("lookalike: error: cannot use ")


def test_stricter_false_match_rates_have_higher_thresholds():
    for head in ("sface", "facenet-casia"):
        points = [same_person(head, "yunet", f) for f in FMRS]
        assert all(p is not None for p in points)
        thresholds = [p.threshold for p in points]
        tmrs = [p.tmr for p in points]
        assert thresholds == sorted(thresholds) and tmrs == sorted(tmrs, reverse=True)
        assert all(p.fmr <= f for p, f in zip(points, FMRS))


def test_verify_takes_arrays_and_refuses_an_unmeasured_pair(detector, sface):
    from PIL import Image

    from lookalike.errors import LookalikeError

    a = np.asarray(Image.open(_lfw("Tony_Blair", 1)).convert("RGB"))
    b = np.asarray(Image.open(_lfw("Tony_Blair", 3)).convert("RGB"))
    v = verify(FaceAnalyzer(detector, sface), a, b)
    assert v.a == "<array a>" and v.same_person
    with pytest.raises(LookalikeError, match=r"no measured same-person threshold.*--threshold"):
        verify(FaceAnalyzer(detector, sface), a, b, fmr=0.05)


def test_operating_points_on_known_scores():
    """Four people, three photos each, in 2-d: the calibration counts the pairs and meets the asked rate."""
    rng = np.random.default_rng(0)
    centres = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.float32)
    v = np.repeat(centres, 3, axis=0) + rng.normal(0, 0.05, (12, 2)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = np.repeat(np.arange(4), 3)
    scores, same = all_pairs(v, ids)
    assert len(scores) == 66 and same.sum() == 4 * 3  # 12 photos: 66 pairs, 3 same-person pairs per person
    op = operating_points(v, ids, (0.1,))[0.1]
    assert op["fmr"] <= 0.1 and op["tmr"] == 1.0 and op["different_pairs"] == 54
