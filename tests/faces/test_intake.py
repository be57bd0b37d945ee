"""A real photo dump with bad files in it: every good face is indexed, every bad file is a reject with a reason."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from lookalike.cli.app import cli
from lookalike.faces.photos import Photo, Rejected, decode_photo, load_photo
from lookalike.weights import package_file
from tests.conftest import require_data


def _lfw(name: str, n: int = 1) -> Path:
    return require_data("lfw", "images", name, f"{name}_{n:04d}.jpg")


@pytest.fixture(scope="module")
def messy_dump(tmp_path_factory) -> Path:
    """Good LFW photos plus every kind of bad file a real dump holds."""
    d = tmp_path_factory.mktemp("dump")
    for name in ("Tony_Blair", "Colin_Powell", "Hugo_Chavez"):
        shutil.copy(_lfw(name), d / f"{name}.jpg")
    (d / "empty.jpg").write_bytes(b"")
    data = _lfw("Jacques_Chirac").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (d / "notes.jpg").write_text("this is a text file, not a photo\n")
    shutil.copy(package_file("skimage", "data/coffee.png"), d / "noface.png")  # a real photo of a coffee cup
    face = Image.open(_lfw("Gerhard_Schroeder"))
    face.convert("CMYK").save(d / "cmyk_face.jpg", quality=95)
    grey16 = (np.asarray(Image.open(_lfw("Donald_Rumsfeld")).convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(d / "grey16_face.png")
    # EXIF-rotated: pixels stored turned 90 degrees, orientation tag 6 says "rotate back to view"
    upright = Image.open(_lfw("George_W_Bush"))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(d / "rotated_face.jpg", exif=exif.tobytes(), quality=95)
    return d


def test_decode_handles_modes_and_limits():
    grey16 = Image.fromarray((np.arange(256 * 4, dtype=np.uint16).reshape(16, 64) * 64).astype(np.uint16))
    buf = io.BytesIO()
    grey16.save(buf, format="PNG")
    rgb = decode_photo(buf.getvalue())
    assert rgb.shape == (16, 64, 3) and rgb.dtype == np.uint8
    assert rgb.max() > 200 and rgb.min() < 5, "16-bit range must map onto 0..255, not clip"
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    assert (decode_photo(buf.getvalue()) == 255).all(), "transparent pixels composite on white"
    big = Image.new("RGB", (300, 300))
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    with pytest.raises(ValueError, match="too large"):
        decode_photo(buf.getvalue(), max_pixels=50_000)


def test_load_photo_never_raises(tmp_path):
    missing = load_photo(tmp_path / "nope.jpg")
    assert isinstance(missing, Rejected) and "unreadable" in missing.reason
    (tmp_path / "d.jpg").mkdir()
    assert isinstance(load_photo(tmp_path / "d.jpg"), Rejected)


def test_index_messy_dump(messy_dump, tmp_path):
    out = tmp_path / "ix"
    res = CliRunner().invoke(cli, ["index", str(messy_dump), "--out", str(out), "--head", "sface", "-q"])
    assert res.exit_code == 0, res.output
    faces = pq.read_table(out / "faces.parquet").to_pylist()
    rejects = {Path(r["path"]).name: r["reason"] for r in pq.read_table(out / "rejects.parquet").to_pylist()}
    indexed = {Path(f["path"]).name for f in faces if f["is_main"]}
    assert indexed == {
        "Tony_Blair.jpg",
        "Colin_Powell.jpg",
        "Hugo_Chavez.jpg",
        "cmyk_face.jpg",
        "grey16_face.png",
        "rotated_face.jpg",
    }
    assert set(rejects) == {"empty.jpg", "truncated.jpg", "notes.jpg", "noface.png"}
    assert "empty" in rejects["empty.jpg"]
    assert "truncated" in rejects["truncated.jpg"]
    assert "not an image" in rejects["notes.jpg"]
    assert "no face" in rejects["noface.png"]
    # the rotated photo was indexed upright: eyes above nose above mouth, in the viewing orientation
    rot = next(f for f in faces if f["path"].endswith("rotated_face.jpg") and f["is_main"])
    lm = np.asarray(rot["landmarks"]).reshape(5, 2)
    assert lm[0, 1] < lm[2, 1] < lm[3, 1] and lm[1, 1] < lm[2, 1] < lm[4, 1]
    assert abs(lm[0, 1] - lm[1, 1]) < 0.3 * abs(lm[1, 0] - lm[0, 0]), "eyes should be roughly level"


def test_rotated_and_converted_photos_embed_like_the_originals(messy_dump, sface, detector):
    """The CMYK and 16-bit copies are the same faces: their embeddings match the originals closely."""
    from lookalike.faces.analyzer import FaceAnalyzer

    analyzer = FaceAnalyzer(detector, sface)
    pairs = [("cmyk_face.jpg", _lfw("Gerhard_Schroeder")), ("rotated_face.jpg", _lfw("George_W_Bush"))]
    for name, original in pairs:
        a, b = load_photo(messy_dump / name), load_photo(original)
        assert isinstance(a, Photo) and isinstance(b, Photo)
        va, vb = (x.faces[0].embedding for x in analyzer.analyze([a, b], face=0))
        assert float(va @ vb) > 0.9, name
