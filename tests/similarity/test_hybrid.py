"""Facial hybrids (seed 000, section 6.2) on real LFW faces: eq. 10 finds the symmetric portrait, every part of the
result comes from the person the PCAM sums chose, and bad input is one line."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from lookalike.cli.app import cli
from lookalike.errors import LookalikeError
from tests.cli.test_cli_input import lookalike, one_error_line
from tests.conftest import require_data

pytest.importorskip("dlib", reason="dlib is not installed (pip install -e '.[dlib]')")
pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[torch]')")

A, B = "Tony_Blair", "Serena_Williams"


def _photos(name: str, n: int = 6) -> list[str]:
    root = require_data("lfw", "images", name)
    return [str(p) for p in sorted(root.glob("*.jpg"))[:n]]


@pytest.fixture(scope="module")
def made():
    from lookalike.similarity.hybrid import make_hybrid

    return make_hybrid(_photos(A), _photos(B), names=(A, B), steps=100)


def _made_asymmetric(img: np.ndarray) -> dict[str, np.ndarray]:
    """Versions of one frontal portrait spoilt on one side: lit from the left, an eye covered, half blurred, a
    hand-like block over a cheek and the mouth corner."""
    h, w = img.shape[:2]
    lit = img.astype(np.float32)
    lit[:, : w // 2] *= 0.35
    eye = img.copy()
    cv2.circle(eye, (int(w * 0.32), int(h * 0.40)), int(w * 0.09), (20, 20, 20), -1)
    blurred = img.copy()
    blurred[:, w // 2 :] = cv2.GaussianBlur(img, (0, 0), 9)[:, w // 2 :]
    hand = img.copy()
    cv2.rectangle(hand, (int(w * 0.55), int(h * 0.55)), (int(w * 0.85), int(h * 0.85)), (190, 150, 120), -1)
    return {"lit from one side": lit.astype(np.uint8), "one eye covered": eye, "half blurred": blurred,
            "a cheek covered": hand}  # fmt: skip


#: frontal, evenly lit LFW photos (looked at), and two of the same man turned aside or looking down
FRONTAL = ("Tony_Blair/Tony_Blair_0003.jpg", "Tony_Blair/Tony_Blair_0005.jpg", "Colin_Powell/Colin_Powell_0008.jpg",
           "Serena_Williams/Serena_Williams_0001.jpg")  # fmt: skip
TURNED = ("Tony_Blair/Tony_Blair_0001.jpg", "Tony_Blair/Tony_Blair_0004.jpg")


def test_eq10_picks_the_frontal_unoccluded_portrait(default_head):
    from lookalike.similarity.portraits import load_portraits, symmetry_scores

    root = require_data("lfw", "images")
    ports = load_portraits([root / f for f in FRONTAL])
    assert len(ports.paths) == len(FRONTAL)
    for k in range(len(ports.paths)):
        original = ports.images[k]
        spoilt = _made_asymmetric(original)
        scores = symmetry_scores(np.stack([original, *spoilt.values()]), default_head)
        worse = {name: round(float(s), 3) for name, s in zip(spoilt, scores[1:], strict=True)}
        assert int(np.argmin(scores)) == 0, f"{ports.paths[k]}: original {scores[0]:.3f}, spoilt {worse}"
    # and among real photos of one man: the frontal one, not those turned aside
    real = load_portraits([root / f for f in (*TURNED, FRONTAL[0])])
    assert int(np.argmin(symmetry_scores(real.images, default_head))) == 2


def _agreement(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Correlation of the two images' Laplacians inside `mask`: Poisson cloning keeps a part's gradients exactly
    and changes only its colour, so the image a part was cloned from agrees with the result there."""
    la = cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F)[mask]
    lb = cv2.Laplacian(cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F)[mask]
    return float(np.corrcoef(la, lb)[0, 1])


def _check_sources(h) -> None:
    """Each segment of `h.image` is the chosen person's pixels (moved where the compose step moves them), not the
    other person's: judged from the two portraits and the landmarks alone, not from the compose step's own map."""
    from lookalike.similarity.hybrid import PART_POINTS, _shift
    from lookalike.similarity.segments import PARTS

    base = h.people[h.source["base"]]
    canvas = h.people[h.source["background"]]
    face = ~base.masks["background"]

    def away_from(mask: np.ndarray) -> np.ndarray:  # 7 px clear of a mask: no blend band
        return ~cv2.dilate(mask.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)

    regions = {"background": canvas.masks["background"] & away_from(face),
               "base": base.masks["base"] & away_from(face & ~base.masks["base"])}  # fmt: skip
    inner = np.ones((7, 7), np.uint8)
    for part in PARTS:
        regions[part] = cv2.erode(base.masks[part].astype(np.uint8), inner).astype(bool)
    for seg, region in regions.items():
        if region.sum() < 50:
            continue
        seen = []
        for person in h.people:
            if seg in PARTS:
                dx, dy = base.points[PART_POINTS[seg]].mean(0) - person.points[PART_POINTS[seg]].mean(0)
                image = _shift(person.image, dx, dy)
            else:
                image = person.image
            seen.append(_agreement(h.image, image, region))
        chosen = h.source[seg]
        assert seen[chosen] > seen[1 - chosen] and seen[chosen] > 0.5, (seg, h.people[chosen].name, seen)


def test_every_segment_comes_from_the_person_the_pcam_sums_chose(made):
    from lookalike.similarity.hybrid import DEFAULT_RULE
    from lookalike.similarity.segments import SEGMENTS

    share = [{k: v / sum(abs(x) for x in p.sums.values()) for k, v in p.sums.items()} for p in made.people]
    for seg in SEGMENTS:
        assert made.source[seg] == int(share[1][seg] > share[0][seg]), seg
    assert made.rule == f"pcam-{DEFAULT_RULE}" == "pcam-share"
    assert {made.source[k] for k in SEGMENTS} == {0, 1}, "both parents give something here"
    _check_sources(made)


def test_the_seeds_rule_compares_raw_sums(made):
    from lookalike.similarity.hybrid import choose_segments
    from lookalike.similarity.segments import SEGMENTS

    a, b = made.people
    raw = choose_segments((a.sums, b.sums), "sum")
    assert raw == {seg: int(b.sums[seg] > a.sums[seg]) for seg in SEGMENTS}
    _check_sources(made)


def test_parts_given_by_hand_are_the_ones_composed(made):
    """The same check on the opposite choice of every segment: it fails when the composition ignores the choice."""
    from lookalike.similarity.hybrid import compose

    flipped = {k: 1 - v for k, v in made.source.items()}
    image, prov = compose(made.people, flipped)
    again = type(made)(image, made.people, flipped, prov, "given")
    _check_sources(again)


def test_the_cli_writes_the_png_the_page_and_json(tmp_path):
    from PIL import Image

    dirs = []
    for name in (A, B):
        d = tmp_path / name
        d.mkdir()
        for p in _photos(name, 4):
            shutil.copy(p, d)
        dirs.append(str(d))
    out, page = tmp_path / "h.png", tmp_path / "h.html"
    portrait_b = sorted((tmp_path / B).glob("*.jpg"))[2]
    portrait_a = sorted((tmp_path / A).glob("*.jpg"))[0]
    res = CliRunner().invoke(cli, ["hybrid", *dirs, "--out", str(out), "--html", str(page), "--json", "--steps", "60",
                                   "--portraits", str(portrait_a), str(portrait_b)])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["people"][1]["portrait"] == str(portrait_b)
    assert set(summary["segments"].values()) <= {A, B} and len(summary["segments"]) == 6
    assert Image.open(out).size == (320, 320)
    html = page.read_text()
    assert 'id="hybrid"' in html and html.count("data:image/") >= 6
    for seg, who in summary["segments"].items():
        assert f"<td>{seg}</td>" in html and f"<b>{who}</b>" in html


def test_too_few_photos_or_no_face_is_one_line(tmp_path):
    from lookalike.similarity.hybrid import make_hybrid

    with pytest.raises(LookalikeError, match=r"need at least 2 photos with a face .* found 1 of 1"):
        make_hybrid(_photos(A, 1), _photos(B, 3), names=(A, B))
    wall = tmp_path / "wall.jpg"
    cv2.imwrite(str(wall), np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(LookalikeError, match=r"found 1 of 2 \(wall.jpg: no face"):
        make_hybrid(_photos(A, 3), [str(wall), _photos(B, 1)[0]], names=(A, B))
    with pytest.raises(LookalikeError, match=r"portrait named for Serena_Williams .*wall.jpg.* no face"):
        make_hybrid(_photos(A, 3), _photos(B, 3), names=(A, B), portraits=(None, str(wall)))
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(_photos(B, 1)[0], one)
    two = tmp_path / "two"
    two.mkdir()
    for p in _photos(A, 2):
        shutil.copy(p, two)
    proc = lookalike("hybrid", str(two), str(one), "--out", "x.png", "-q", cwd=tmp_path)
    assert "one: need at least 2 photos with a face" in one_error_line(proc)
    assert not (tmp_path / "x.png").exists()
