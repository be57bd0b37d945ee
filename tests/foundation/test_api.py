"""The public API as docs/library.md shows it: its first block run on real photos, the version, a light import."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_data

LIBRARY = Path(__file__).resolve().parents[2] / "docs" / "library.md"
PEOPLE = ("Tony_Blair", "Colin_Powell", "Vladimir_Putin")


def library_block() -> str:
    """The first Python block of docs/library.md (the one the page says this test runs)."""
    return re.search(r"```python\n(.*?)```", LIBRARY.read_text(), re.S).group(1)


def test_readme_library_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    lfw10 = require_data("gallery", "lfw10")
    for person in PEOPLE:
        (tmp_path / "photos" / person).mkdir(parents=True)
        for photo in sorted((lfw10 / person).glob("*.jpg"))[1:5]:  # _0002.. : _0001 is the query
            shutil.copy(photo, tmp_path / "photos" / person / photo.name)
    shutil.copy(lfw10 / "Tony_Blair" / "Tony_Blair_0001.jpg", tmp_path / "me.jpg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOOKALIKE_INDEX_HOME", str(tmp_path / "indexes"))
    exec(compile(library_block(), "docs/library.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    ranks = [ln.split() for ln in lines[:3]]
    assert [r[0] for r in ranks] == ["1", "2", "3"], lines
    assert ranks[0][2] == "Tony_Blair", lines  # the right person first
    assert {r[2] for r in ranks} == set(PEOPLE), lines  # identities mode: each person once
    assert lines[3] == "True", lines  # two photos of Tony Blair: the same person
    faces, names = lines[4].split(" ", 1)
    assert int(faces) >= len(PEOPLE) * 4 and "'mine'" in names, lines

    # the CLI lists the same index
    from click.testing import CliRunner

    from lookalike.cli.app import cli

    listed = CliRunner().invoke(cli, ["indexes", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = [r for r in json.loads(listed.output) if r["name"] == "mine"]
    assert row["faces"] == int(faces) and row["head"] == "facenet-casia" and row["detector"] == "yunet", row
    assert Path(row["folder"]) == tmp_path / "indexes" / "mine" and row["updated"]
    table = CliRunner().invoke(cli, ["indexes"])
    assert table.exit_code == 0 and re.search(rf"^mine\s+{faces}\s", table.output, re.M), table.output


def test_api_refuses_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lookalike

    monkeypatch.setenv("LOOKALIKE_INDEX_HOME", str(tmp_path / "indexes"))
    with pytest.raises(lookalike.LookalikeError, match="no index"):
        lookalike.open_index("nothing-here")
    with pytest.raises(lookalike.LookalikeError, match="not a folder name"):
        lookalike.build_index(tmp_path, name="../escape")
    with pytest.raises(lookalike.LookalikeError, match="no such folder"):
        lookalike.build_index(tmp_path / "absent", name="x")


def test_version_without_torch() -> None:
    code = "import sys, lookalike; print(lookalike.__version__); print('torch' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    version, heavy = out.stdout.split("\n")[:2]
    from importlib.metadata import version as installed

    assert version == installed("lookalike")
    assert heavy == "False False", out.stdout
    cli = subprocess.run([sys.executable, "-m", "lookalike", "--version"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and cli.stdout.strip().endswith(version), cli.stdout + cli.stderr
