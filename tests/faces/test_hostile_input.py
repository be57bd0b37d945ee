"""No input kills a run: a corpus of every hostile file a photo dump holds, made here in a temp folder, and a
seeded fuzz of real photos (truncated and bit-flipped at many offsets). `index` and `query` run as a user runs
them (the real `lookalike` process): no traceback, every bad file a reject with its reason, every good face
indexed."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lookalike.faces.photos import Photo, Rejected, load_photo
from lookalike.paths import fs_path
from tests.conftest import require_data

LATIN1_NAME = os.fsdecode(b"caf\xe9.jpg")  # not valid UTF-8


def _lfw(name: str, n: int = 1) -> Path:
    return require_data("lfw", "images", name, f"{name}_{n:04d}.jpg")


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The real `lookalike` process (its entry point), bounded in time: a hang is a failure, not a stuck CI."""
    code = "import sys; from lookalike.cli.app import main; sys.argv[0] = 'lookalike'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, errors="replace"
    )


def _png(size, mode="RGB", color=0) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str], set[str]]:
    """(folder, {bad file name: words its reject reason must hold}, good file names)."""
    d = tmp_path_factory.mktemp("hostile") / "dump"
    (d / "Tony_Blair").mkdir(parents=True)
    shutil.copy(_lfw("Tony_Blair"), d / "Tony_Blair" / "Tony_Blair_0001.jpg")
    good = {"Tony_Blair_0001.jpg"}
    bad: dict[str, str] = {}
    # images too small for the detector, in every shape
    tiny = {"1x1.png": (1, 1), "11x11.png": (11, 11), "19x40.png": (19, 40), "1x3000.png": (1, 3000)}
    for name, size in tiny.items():
        (d / name).write_bytes(_png(size))
        bad[name] = "too small"
    (d / "strip.png").write_bytes(_png((150, 40000), color=(120, 90, 60)))  # 6x1600 once downscaled
    bad["strip.png"] = "too small"
    # cut inside the header, and inside the data
    jpeg = _lfw("Colin_Powell").read_bytes()
    webp = io.BytesIO()
    Image.open(_lfw("Colin_Powell")).save(webp, format="WEBP")
    for cut in (3, 20, 160, 600):
        (d / f"jpeg_cut{cut}.jpg").write_bytes(jpeg[:cut])
        bad[f"jpeg_cut{cut}.jpg"] = "corrupt"
    for cut in (12, 30, 100, len(webp.getvalue()) // 2):
        (d / f"webp_cut{cut}.webp").write_bytes(webp.getvalue()[:cut])
        bad[f"webp_cut{cut}.webp"] = "corrupt"
    (d / "empty.jpg").write_bytes(b"")
    bad["empty.jpg"] = "empty"
    (d / "notes.jpg").write_text("not a photo\n")
    bad["notes.jpg"] = "not an image"
    # not regular files: must be rejects, never read (a read of /dev/zero never ends, a FIFO blocks forever)
    os.symlink("/dev/zero", d / "zero.jpg")
    bad["zero.jpg"] = "not a regular file"
    os.mkfifo(d / "pipe.jpg")
    bad["pipe.jpg"] = "not a regular file"
    # above the pixel limit (the header says so: nothing is decoded)
    (d / "bomb.png").write_bytes(_png((11000, 11000), mode="1"))
    bad["bomb.png"] = "too large"
    (d / "raw.cr2").write_bytes(b"II*\x00" + b"\x00" * 64)
    bad["raw.cr2"] = "unsupported photo format"
    # good photos under hostile names and in phone formats
    shutil.copy(_lfw("Hugo_Chavez"), d / LATIN1_NAME)
    good.add(LATIN1_NAME)
    shutil.copy(_lfw("Hugo_Chavez", 2), d / "IMG_0002")  # no ending: found by its first bytes
    good.add("IMG_0002")
    for n, ext in ((3, "heic"), (4, "avif"), (5, "jp2")):
        Image.open(_lfw("Hugo_Chavez", n)).save(d / f"chavez.{ext}")
        good.add(f"chavez.{ext}")
    # a JPEG whose EXIF block is junk: indexed, and Pillow's "Corrupt EXIF data" warning stays quiet
    Image.open(_lfw("Gerhard_Schroeder")).save(d / "bad_exif.jpg", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    good.add("bad_exif.jpg")
    (d / "readme.txt").write_text("not a photo, skipped and counted\n")
    return d, bad, good


def _names(table) -> list[str]:
    return [Path(fs_path(p)).name for p in table["path"].to_pylist()]


def _say(capsys, line: str) -> None:
    """A line in the test log even when pytest captures output (the number of cases tried)."""
    with capsys.disabled():
        print(f"\n  {line}")


@pytest.mark.parametrize("detector", ["mtcnn", "yunet"])
def test_hostile_corpus_index_and_query(corpus, tmp_path, capsys, detector):
    d, bad, good = corpus
    out = tmp_path / "ix"
    res = _cli("index", str(d), "--out", str(out), "--head", "sface", "--detector", detector, "--json")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert "Corrupt EXIF" not in res.stderr and "Warning" not in res.stderr, res.stderr
    faces, rejects = pq.read_table(out / "faces.parquet"), pq.read_table(out / "rejects.parquet")
    reasons = dict(zip(_names(rejects), rejects["reason"].to_pylist()))
    _say(capsys, f"hostile corpus ({detector}): {len(bad) + len(good)} files, {len(bad)} bad, {len(good)} good")
    for name, words in bad.items():
        assert name in reasons, f"{name} has no reject row"
        assert words in reasons[name], f"{name}: {reasons[name]!r} lacks {words!r}"
        assert "\n" not in reasons[name]
    main = {n for n, m in zip(_names(faces), faces["is_main"].to_pylist()) if m}
    assert main == good, f"missing {good - main}, unexpected {main - good}"
    # a name that is not UTF-8 is stored escaped, shown escaped, and round-trips to the file
    stored = next(p for p in faces["path"].to_pylist() if "caf" in p)
    assert stored.endswith("caf\\xe9.jpg") and os.path.isfile(fs_path(stored))
    assert '"files_skipped": 1' in res.stdout  # readme.txt

    # query: every bad file a one-line error and exit 2; a good one answered beside bad ones: exit 3
    bad_paths = [str(d / n) for n in ("11x11.png", "strip.png", "jpeg_cut160.jpg", "webp_cut30.webp", "zero.jpg",
                                       "pipe.jpg", "bomb.png", "empty.jpg")]  # fmt: skip
    res = _cli("query", *bad_paths, "--index", str(out))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == len(bad_paths) and all(ln.startswith("lookalike: error: ") for ln in lines), lines
    res = _cli("query", str(d / "1x3000.png"), str(d / LATIN1_NAME), "--index", str(out), "-k", "3", "--json")
    assert res.returncode == 3 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert "caf\\\\xe9.jpg" in res.stdout  # the query photo itself is left out, but its name is shown escaped
    assert _cli("query", str(d / "IMG_0002"), "--index", str(out), "-k", "0").returncode == 2


def test_list_file_with_undecodable_line(corpus, tmp_path):
    d, _, _ = corpus
    listing = tmp_path / "photos.txt"
    listing.write_bytes(os.fsencode(str(d / LATIN1_NAME)) + b"\n" + os.fsencode(str(d / "IMG_0002")) + b"\n")
    res = _cli("index", str(listing), "--out", str(tmp_path / "ix"), "--head", "sface", "-q")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert "without identity labels" in res.stderr  # a list file gives no folder labels: said, not silent
    assert pq.read_table(tmp_path / "ix" / "faces.parquet").num_rows == 2


def _mutants(seed: int = 0) -> list[tuple[str, bytes]]:
    """Real photos from ../shared/data (JPEG as stored, and re-encoded as PNG and WebP), truncated at many
    offsets and bit-flipped at many places."""
    rng = random.Random(seed)
    sources = []
    for name in ("Tony_Blair", "Colin_Powell", "Hugo_Chavez"):
        raw = _lfw(name).read_bytes()
        sources.append((f"{name}.jpg", raw))
        img = Image.open(io.BytesIO(raw))
        for fmt in ("PNG", "WEBP"):
            buf = io.BytesIO()
            img.save(buf, format=fmt)
            sources.append((f"{name}.{fmt.lower()}", buf.getvalue()))
    out = []
    for label, data in sources:
        n = len(data)
        cuts = sorted(set(list(range(0, min(n, 700), 7)) + [rng.randrange(n) for _ in range(120)]))
        out += [(f"{label}.cut{c}", data[:c]) for c in cuts]
        for k in range(150):
            b = bytearray(data)
            for _ in range(rng.choice((1, 2, 8))):
                pos = rng.randrange(min(n, 2048)) if k % 2 else rng.randrange(n)
                b[pos] ^= 1 << rng.randrange(8)
            out.append((f"{label}.flip{k}", bytes(b)))
    return out


def test_fuzzed_photos_never_escape(tmp_path, capsys):
    """Thousands of damaged real photos through intake in-process, then a sample through `lookalike index`."""
    mutants = _mutants()
    outcomes = {"photo": 0, "reject": 0}
    d = tmp_path / "fuzz"
    d.mkdir()
    for k, (label, data) in enumerate(mutants):
        p = d / f"{k:05d}_{label.replace('.', '_')}.{label.split('.')[1]}"
        p.write_bytes(data)
        item = load_photo(p)  # must never raise
        assert isinstance(item, Photo | Rejected)
        if isinstance(item, Rejected):
            assert item.reason and "\n" not in item.reason
        else:
            assert item.rgb.ndim == 3 and item.rgb.shape[2] == 3 and item.rgb.dtype == np.uint8
        outcomes["photo" if isinstance(item, Photo) else "reject"] += 1
    _say(capsys, f"fuzz: {len(mutants)} damaged photos tried in intake: {outcomes}")
    assert len(mutants) >= 2000

    sample = tmp_path / "sample"
    sample.mkdir()
    files = sorted(d.iterdir())
    for p in random.Random(1).sample(files, 240):
        shutil.copy(p, sample / p.name)
    out = tmp_path / "ix"
    res = _cli("index", str(sample), "--out", str(out), "--head", "sface", "-q", timeout=600)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    faces, rejects = pq.read_table(out / "faces.parquet"), pq.read_table(out / "rejects.parquet")
    accounted = set(faces["path"].to_pylist()) | set(rejects["path"].to_pylist())
    assert accounted == {str(p) for p in sample.iterdir()}, "every file is indexed or a reject"
    assert all(r and "\n" not in r for r in rejects["reason"].to_pylist())
    _say(capsys, f"fuzz: 240 of them through `lookalike index`: {faces.num_rows} faces, {rejects.num_rows} rejects")
    assert faces.num_rows > 0
    queries = [str(sample / n) for n in sorted(os.listdir(sample))[:12]]
    res = _cli("query", *queries, "--index", str(out), "-k", "3")
    assert res.returncode in (0, 2, 3) and "Traceback" not in res.stderr, res.stderr[-3000:]


def test_pixels_in_flight_are_bounded(tmp_path):
    """The reader never holds more decoded pixels than the budget (one photo above it, alone), hands over
    what it holds instead of waiting forever, and yields every file once, in order."""
    from lookalike.faces.photos import PixelBudget
    from lookalike.ingest.find import FindSettings, Task, read_batches, release_batch

    paths = []
    for k in range(12):
        side = 3000 if k == 5 else 1000  # one photo (9 MP) above the whole budget
        p = tmp_path / f"{k:02d}.png"
        p.write_bytes(_png((side, side), color=(k, k, k)))
        paths.append(str(p))
    budget = PixelBudget(2_500_000)
    peak = {"used": 0}
    real_acquire = budget.acquire

    def acquire(n: int) -> int:
        got = real_acquire(n)
        peak["used"] = max(peak["used"], budget.used)
        return got

    budget.acquire = acquire  # type: ignore[method-assign]
    seen = []
    settings = FindSettings({}, "facenet160", batch_files=8)
    for batch in read_batches([Task(p) for p in paths], settings, budget):
        assert budget.used <= budget.limit
        seen += [b.stat.path for b in batch]
        assert all(isinstance(b, Photo) for b in batch)
        release_batch(batch, budget)
    assert seen == paths
    assert peak["used"] <= budget.limit
