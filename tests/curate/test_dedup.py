"""De-duplication finds planted copies in an LFW folder; the page shows them; --remove / --restore round trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from lookalike.cli.app import cli
from tests.conftest import embedded_page, index_with_copy, require_data

KINDS = ("copy", "resized", "q50", "crop5")


def _plant(src, dest):
    """Copies of `src` next to it in `dest`: exact, resized to 80%, JPEG quality 50, 5 px cropped off."""
    img = Image.open(src).convert("RGB")
    w, h = img.size
    shutil.copyfile(src, dest / f"{src.stem}_copy.jpg")
    img.resize((int(w * 0.8), int(h * 0.8)), Image.LANCZOS).save(dest / f"{src.stem}_resized.jpg", quality=95)
    img.save(dest / f"{src.stem}_q50.jpg", quality=50)
    img.crop((5, 5, w, h)).save(dest / f"{src.stem}_crop5.jpg", quality=95)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    lfw = require_data("lfw", "images")
    root = tmp_path_factory.mktemp("dedup") / "photos"
    people = sorted(p for p in lfw.iterdir() if p.is_dir())[:600:10]  # 60 people, one photo each
    planted = []
    for k, person in enumerate(people):
        src = sorted(person.glob("*.jpg"))[0]
        (root / person.name).mkdir(parents=True)
        shutil.copyfile(src, root / person.name / src.name)
        if k < 12:
            _plant(src, root / person.name)
            orig = str(root / person.name / src.name)
            planted += [(orig, str(root / person.name / f"{src.stem}_{kd}.jpg")) for kd in KINDS]
    return root, planted


def _original(path: str) -> str:
    for kd in KINDS:
        path = path.replace(f"_{kd}.jpg", ".jpg")
    return path


def _run(args, home):
    env = {"LOOKALIKE_INDEX_HOME": str(home / "indexes"), "LOOKALIKE_WEIGHTS": str(home / "weights")}
    res = CliRunner(env=env).invoke(cli, args)
    assert res.exit_code == 0, res.output
    return res.output


def test_planted_copies_found_shown_removed_restored(planted, tmp_path):
    root, pairs = planted
    page = tmp_path / "dups.html"
    # whole photos (not aligned crops): here the opt-in pixel check adds the re-encoded copies
    out = json.loads(_run(["dedup", str(root), "--json", "--pixel-check", "--html", str(page)], tmp_path))
    assert out["head"] == "sface"  # no dinov2 weights offline: the documented fallback
    found = {frozenset(p[:2]) for p in out["exact"] + out["near"]}
    hits = [p for p in pairs if frozenset(p) in found]
    recall = len(hits) / len(pairs)
    assert recall >= 0.95, f"recall {recall:.3f}; missed {[p[1] for p in pairs if p not in hits]}"
    exact = {frozenset(p) for p in out["exact"]}
    assert all(frozenset(p) in exact for p in pairs if p[1].endswith("_copy.jpg"))
    false = [p for p in out["near"] if _original(p[0]) != _original(p[1])]  # copies of one photo pair up too
    assert not false, false
    html = page.read_text()
    imgs, links = embedded_page(html)
    assert len(imgs) >= 2 * len(hits) and all(Path(p[1]).as_uri() in links for p in hits)
    # whole photos, not face crops: the first picture has the photo's own aspect ratio
    import base64
    import io

    from PIL import Image

    first = Image.open(io.BytesIO(base64.b64decode(imgs[0].split(",", 1)[1])))
    a = Path(out["exact"][0][0] if out["exact"] else out["near"][0][0])
    w, h = Image.open(a).size
    assert max(first.size) == min(256, max(w, h)) and abs(first.size[0] / first.size[1] - w / h) < 0.05

    # --remove takes the later file of each pair out, on record; a re-index does not bring them back
    ix = Path(out["index"])
    info = json.loads(_run(["info", str(ix), "--json"], tmp_path))
    rem = json.loads(_run(["dedup", str(ix), "--remove", "--json", "--pixel-check"], tmp_path))
    assert rem["removed"] >= len(hits) - 1
    assert (ix / "removed.parquet").exists()
    after = json.loads(_run(["info", str(ix), "--json"], tmp_path))
    assert after["files"] == info["files"] - rem["removed"]
    assert after["rejects"] == info["rejects"] + rem["removed"]
    _run(["index", str(root), "--out", str(ix), "-q"], tmp_path)
    again = json.loads(_run(["dedup", str(ix), "--json"], tmp_path))
    assert not again["exact"]
    # --restore puts them back with their vectors
    _run(["dedup", str(ix), "--restore"], tmp_path)
    back = json.loads(_run(["info", str(ix), "--json"], tmp_path))
    assert [back[k] for k in ("faces", "files", "rejects")] == [info[k] for k in ("faces", "files", "rejects")]
    assert not (ix / "removed.parquet").exists()
    assert len(json.loads(_run(["dedup", str(ix), "--json"], tmp_path))["exact"]) == len(out["exact"])


@pytest.fixture
def with_copy(tmp_path, sface, detector):
    ix, root = index_with_copy(
        tmp_path, sface, detector, {"Tony_Blair": 2}, ("Tony_Blair_0001.jpg", "Tony_Blair_0001 copy.jpg")
    )
    photos = root / "Tony_Blair"
    plan = [{"path": str(photos / "Tony_Blair_0001 copy.jpg"), "kept_path": str(photos / "Tony_Blair_0001.jpg"),
             "score": 1.0, "reason": "exact copy"}]  # fmt: skip
    return ix, plan


def _paths(ix) -> set[str]:
    from lookalike.index.store import FaceStore

    return set(FaceStore.open(ix).faces(["path"])["path"].to_pylist())


def test_a_removal_that_cannot_be_written_changes_nothing(with_copy, monkeypatch):
    """A full disk while the removal is committed: one line, the index as it was, no record of a removal."""
    import errno

    from lookalike.curate.dedup import remove_duplicates
    from lookalike.index.layout import REMOVED
    from lookalike.index.store import FaceStore

    ix, plan = with_copy
    before = _paths(ix)

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FaceStore, "commit_part", full)
    with pytest.raises(OSError):
        remove_duplicates(ix, plan)
    monkeypatch.undo()
    assert _paths(ix) == before and not (ix / REMOVED).exists()
    assert not [f for f in ix.iterdir() if f.name.startswith(f".{REMOVED}")]  # no temp record left either


def test_a_removal_whose_compaction_fails_is_said_as_done(with_copy, monkeypatch):
    from lookalike.curate.dedup import remove_duplicates, restore_removed
    from lookalike.errors import LookalikeError
    from lookalike.index.layout import REMOVED
    from lookalike.index.store import FaceStore

    ix, plan = with_copy
    before = _paths(ix)

    def full(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FaceStore, "finalize", full)
    with pytest.raises(LookalikeError, match=r"removed 1 photos .* compacting the index failed"):
        remove_duplicates(ix, plan)
    monkeypatch.undo()
    assert _paths(ix) == before - {plan[0]["path"]} and (ix / REMOVED).exists()  # as said: removed, recorded
    assert restore_removed(ix) == 1 and _paths(ix) == before
