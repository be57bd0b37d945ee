"""The CLI end to end on the package-shipped sample photos (no data folder): index a folder, ask about a photo,
and a photo that cannot be answered beside one that can."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lookalike.cli.app import cli
from tests.conftest import write_sample_photos


def test_index_then_query_the_samples(tmp_path):
    root = write_sample_photos(tmp_path / "photos")
    ix = tmp_path / "ix"
    runner = CliRunner()
    built = runner.invoke(cli, ["index", str(root), "--out", str(ix), "--head", "sface", "--json"])
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout.strip().splitlines()[-1])
    assert report["counts"] == {"faces": 9, "files": 9, "rejects": 1}
    asked = runner.invoke(cli, ["query", str(root / "Eileen_Collins" / "2.jpg"), str(root / "notes" / "coffee.jpg"),
                                "--index", str(ix), "--json", "-k", "2"])  # fmt: skip
    assert asked.exit_code == 3  # some answered, some not
    answers = [json.loads(x) for x in asked.stdout.splitlines()]
    assert answers[0]["results"][0]["identity"] == "Eileen_Collins"
    assert "no face found in" in asked.stderr and "coffee.jpg" in asked.stderr
