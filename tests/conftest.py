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
    from lookalike.index.build import IndexOptions, run_index

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

    from lookalike.index.build import IndexOptions, run_index

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
