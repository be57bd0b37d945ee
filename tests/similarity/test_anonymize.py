"""Anonymisation candidates on a small real pool with a made-up attribute file."""

from __future__ import annotations

import csv
import json

import numpy as np
from click.testing import CliRunner

from lookalike.cli.app import cli
from lookalike.similarity.anonymize import choose, upper_ci
from tests.conftest import require_data


def test_upper_ci_by_hand():
    d = np.array([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2) = 4.302653
    assert abs(upper_ci(d) - (2 + 4.302653 / np.sqrt(3))) < 1e-5


def test_choose_picks_the_closest_group_and_its_farthest_faces():
    q = np.array([1.0, 0.0])
    pool = np.array([[1, 0], [0.9, np.sqrt(1 - 0.81)], [0, 1], [-1, 0]], dtype=float)
    attrs = [("male", "young"), ("male", "young"), ("female", "older"), ("female", "older")]
    c = choose(q, pool, attrs, k=1)
    assert c.group in ("male", "young", "young&male") and c.rows == [1]


def test_anonymize_cli_on_lfw10(lfw10_index, tmp_path):
    root = require_data("gallery", "lfw10")
    attrs = tmp_path / "attrs.csv"
    women = {"Colin_Powell", "Hugo_Chavez", "Ariel_Sharon"}  # made up: a label per identity
    with attrs.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["identity", "gender", "age"])
        for p in sorted(x.name for x in root.iterdir()):
            w.writerow([p, "female" if p in women else "male", "older"])
    q = sorted((root / "Tony_Blair").glob("*.jpg"))[0]
    res = CliRunner().invoke(
        cli,
        ["anonymize-candidates", str(q), "--pool", str(lfw10_index), "--attributes", str(attrs), "-k", "3", "--json"],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["group"] in ("male", "older&male"), out["group_distance"]
    assert len(out["candidates"]) == 3
    d = [c["distance"] for c in out["candidates"]]
    assert d == sorted(d, reverse=True)
