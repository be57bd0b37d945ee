"""Shared fixtures: the real-photo folder (skip when absent), models loaded once, small real indexes."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike import config


@pytest.fixture(autouse=True, scope="session")
def _private_state(tmp_path_factory):
    """The record of named indexes goes to a folder of the test run, never the user's own."""
    import os

    os.environ["LOOKALIKE_STATE"] = str(tmp_path_factory.mktemp("state"))
    yield


def require_data(*parts: str) -> Path:
    """A path under the shared data folder, or skip the test with a one-line reason."""
    p = config.data_dir().joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not found: {p} (set ${config.DATA_ENV})")
    return p


@pytest.fixture(scope="session")
def detector():
    from lookalike.faces.detect import FaceDetector

    return FaceDetector()


@pytest.fixture(scope="session")
def sface():
    from lookalike.heads import create_head

    return create_head("sface")


@pytest.fixture(scope="session")
def default_head():
    from lookalike.heads import DEFAULT_HEAD, create_head

    return create_head(DEFAULT_HEAD)


def build_index(tmp: Path, source: Path, head, detector, **opts):
    from lookalike.index.runner import IndexOptions, run_index

    out = tmp / f"{source.name}-{head.name}"
    run_index(source, out, head, detector, IndexOptions(**opts))
    return out


@pytest.fixture(scope="session")
def lfw10_index(tmp_path_factory, default_head, detector) -> Path:
    return build_index(tmp_path_factory.mktemp("ix"), require_data("gallery", "lfw10"), default_head, detector)


def embedded_page(html: str) -> tuple[list[str], list[str]]:
    """The `<img src>` and `<a href>` values of a page; asserts every image is embedded (a data: URI), so the page
    stands alone when moved, and every link is a file:// address of an original."""
    import re

    imgs = re.findall(r'<img src="([^"]*)"', html)
    links = re.findall(r'<a href="([^"]*)"', html)
    linked = [src[:60] for src in imgs if not src.startswith("data:image/")]
    assert imgs and not linked, linked
    assert all(href.startswith("file://") for href in links), links
    return imgs, links


#: The address tests give Starlette's TestClient: a Host the server answers to (its front door refuses others).
LOCAL_URL = "http://127.0.0.1:8765"


def csrf_of(html: str) -> str:
    """The per-server token a page's forms carry (`lookalike.serve.guard.CSRF_FIELD`)."""
    import re

    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form token"
    return found.group(1)


def index_with_copy(tmp: Path, sface, detector, people: dict[str, int], copy: tuple[str, str]) -> tuple[Path, Path]:
    """A small real index: `people` (LFW name -> how many of their photos) under `tmp/photos`, plus `copy[1]`, an
    exact copy of the photo `copy[0]` of the first person (a duplicate pair Review and dedup offer), indexed in
    this process with sface. Returns `(index, photos folder)`."""
    import shutil

    from lookalike.index.runner import IndexOptions, run_index

    lfw = require_data("lfw", "images")
    root = tmp / "photos"
    for name, n in people.items():
        (root / name).mkdir(parents=True)
        for f in sorted((lfw / name).glob("*.jpg"))[:n]:
            shutil.copy(f, root / name / f.name)
    first = root / next(iter(people))
    shutil.copy(first / copy[0], first / copy[1])
    ix = tmp / "ix"
    run_index(root, ix, sface, detector, IndexOptions(workers=0))
    return ix, root


def sample_faces() -> dict[str, object]:
    """Photos of three people that the installed packages ship (`lookalike.faces.samples`; no data folder needed),
    as RGB arrays by a folder-style identity name."""
    import numpy as np
    from PIL import Image

    from lookalike.faces.samples import SAMPLES, sample_file

    out = {}
    for sample in SAMPLES:
        if sample.person is not None:
            with Image.open(sample_file(sample)) as im:
                out[sample.person] = np.asarray(im.convert("RGB"))
    return out


def write_sample_photos(root: Path, side: int | None = None, per_person: int = 3) -> Path:
    """`root/<person>/<n>.jpg` from `sample_faces`: the photo, mirrored, then brighter and a little rotated, each
    resized so its long side is `side` (None: as shipped); plus `notes/coffee.jpg`, a photo without a face.
    Returns `root`."""
    import numpy as np
    from PIL import Image, ImageEnhance

    from lookalike.faces.samples import SAMPLES, sample_file

    def save(rgb, path: Path) -> None:
        img = Image.fromarray(rgb)
        if side:
            w, h = img.size
            img = img.resize((round(w * side / max(w, h)), round(h * side / max(w, h))), Image.Resampling.BICUBIC)
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, quality=92)

    for name, rgb in sample_faces().items():
        variants = [rgb, rgb[:, ::-1], np.asarray(ImageEnhance.Brightness(Image.fromarray(rgb).rotate(4)).enhance(1.2))]
        for n, v in enumerate(variants[:per_person]):
            save(np.ascontiguousarray(v), root / name / f"{n}.jpg")
    with Image.open(sample_file(next(s for s in SAMPLES if s.person is None))) as im:
        save(np.asarray(im.convert("RGB")), root / "notes" / "coffee.jpg")
    return root


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory, sface, detector) -> tuple[Path, Path]:
    """A small real index of the package-shipped sample photos (`write_sample_photos`: three people, three photos
    each, and a photo without a face), indexed in this process with sface; plus `Eileen_Collins/0 copy.jpg`, an
    exact copy (a duplicate pair). Needs no data folder. Returns `(index, photos folder)`."""
    import shutil

    from lookalike.index.runner import IndexOptions, run_index

    tmp = tmp_path_factory.mktemp("samples")
    root = write_sample_photos(tmp / "photos")
    shutil.copy(root / "Eileen_Collins" / "0.jpg", root / "Eileen_Collins" / "0 copy.jpg")
    ix = tmp / "ix"
    run_index(root, ix, sface, detector, IndexOptions(workers=0))
    return ix, root
