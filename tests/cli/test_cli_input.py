"""Bad input to the CLI's verbs is one `lookalike: error:` line (or click's usage line) before any work, never a
traceback: labels files of every kind users make, NUL-separated lists, output folders that hold the user's files,
and numbers out of range."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_data


def lookalike(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lookalike", *args], cwd=cwd, capture_output=True, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.decode("utf-8", "replace")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("lookalike: error: "), err
    return lines[0]


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    src = require_data("gallery", "lfw10", "Tony_Blair")
    (tmp_path / "photos").mkdir()
    for p in sorted(src.glob("*.jpg"))[:2]:
        shutil.copy(p, tmp_path / "photos" / p.name)
    return tmp_path / "photos"


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"path,identity\nTony_Blair_0001.jpg,Ren\xe9\n", "is not UTF-8 text"),
        (b"path,identity\nTony_Blair_0001.jpg,\n", "empty identity"),
        (b"path,identity\nTony_Blair_0001.jpg,Tony\nTony_Blair_0001.jpg,Anthony\n", "is labelled twice"),
    ],
    ids=["latin-1", "empty", "twice"],
)
def test_a_bad_labels_file_is_one_line_before_any_model(photo_dir: Path, content: bytes, said: str) -> None:
    labels = photo_dir / "labels.csv"
    labels.write_bytes(content)
    proc = lookalike("index", str(photo_dir), "--out", "ix", "--labels", str(labels), "-q", cwd=photo_dir.parent)
    assert said in one_error_line(proc)
    assert not (photo_dir.parent / "ix").exists()  # refused before the run began


def test_a_bom_header_and_a_nul_separated_list(photo_dir: Path) -> None:
    from lookalike.faces.labels import read_labels
    from lookalike.faces.scan import scan_source

    labels = photo_dir / "labels.csv"
    labels.write_bytes("\ufeffpath,identity\nTony_Blair_0001.jpg,Tony\n".encode())
    assert list(read_labels(labels).values()) == ["Tony"]  # the header is a header, not a row
    listed = photo_dir.parent / "list.txt"
    names = sorted(photo_dir.glob("*.jpg"))
    listed.write_bytes(b"\0".join(bytes(p) for p in names) + b"\0")  # as `find -print0` writes it
    assert scan_source(listed).photos == [str(p) for p in names]


def test_characterize_leaves_a_users_folder_alone(photo_dir: Path) -> None:
    out = photo_dir.parent / "site"
    out.mkdir()
    (out / "index.html").write_text("<p>my own page</p>")
    proc = lookalike("characterize", str(photo_dir), "--out", str(out), "-q", cwd=photo_dir.parent)
    assert "characterize did not write" in one_error_line(proc)
    assert (out / "index.html").read_text() == "<p>my own page</p>"


OUT_OF_RANGE = [["characterize", "photos", "--steps", "0"], ["mine-vise", "photos", "--splits", "0"]]


@pytest.mark.parametrize("args", OUT_OF_RANGE, ids=["steps", "splits"])
def test_numbers_out_of_range_are_usage_errors(photo_dir: Path, args: list[str]) -> None:
    proc = lookalike(*args, cwd=photo_dir.parent)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err and "Invalid value" in err, err


def test_characterize_takes_a_photo_whose_name_is_not_utf8(photo_dir: Path) -> None:
    """A folder with `caf\\xe9.jpg` (Latin-1 bytes in its name): characterized with the others, the name stored as
    printable text in summary.json."""
    import os

    odd = os.fsencode(photo_dir) + b"/caf\xe9.jpg"
    shutil.copy(next(photo_dir.glob("*.jpg")), os.fsdecode(odd))
    against = str(require_data("gallery", "lfw10"))
    proc = lookalike("characterize", str(photo_dir), "--against", against, "--arbitrary", "20", "--steps", "5",
                     "--out", "out", "-q", "--json", cwd=photo_dir.parent)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    summary = json.loads((photo_dir.parent / "out" / "summary.json").read_text(encoding="utf-8"))
    names = [p["path"] for p in summary["portraits"]]
    assert len(names) == 3 and any(n.endswith("caf\\xe9.jpg") for n in names), names


@pytest.mark.parametrize(
    "args",
    [["verify", "a.jpg", "b.jpg", "--threshold", "nan"], ["cluster", "--threshold", "nan", "--json"],
     ["dedup", "photos", "--threshold", "2"], ["query", "a.jpg", "-k", "100000"]],
    ids=["verify", "cluster", "dedup", "query"],
)  # fmt: skip
def test_thresholds_must_be_cosines(photo_dir: Path, args: list[str]) -> None:
    proc = lookalike(*args, cwd=photo_dir.parent)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Invalid value" in err and "Traceback" not in err, err
    assert proc.stdout.strip() in (b"", b"[]"), proc.stdout  # no NaN printed as if it were JSON


def test_a_folder_that_cannot_be_listed_is_a_reject_not_silence(tmp_path: Path) -> None:
    """A sub-folder whose path is over the system's limit (or unreadable) is named in the scan, not dropped."""
    import os

    from lookalike.faces.scan import scan_source

    root = tmp_path / "photos"
    os.makedirs(root)
    here = os.getcwd()
    try:  # a chain of folders longer than PATH_MAX, made by walking down with relative names
        os.chdir(root)
        for _ in range(40):
            os.mkdir("d" * 200)
            os.chdir("d" * 200)
    finally:
        os.chdir(here)
    scan = scan_source(root)
    assert any("folder cannot be read" in why for _, why in scan.unsupported), scan.unsupported
