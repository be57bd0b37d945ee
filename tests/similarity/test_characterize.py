"""Seed 000 characterisation on real LFW faces: a photo of another person slipped into a set is found."""

from __future__ import annotations

import json
import random

from click.testing import CliRunner

from lookalike.cli.app import cli
from tests.conftest import embedded_page, require_data

PERSON, INTRUDER = "Tom_Daschle", "Paul_Bremer"


def test_intruder_is_least_representative_and_page_is_written(tmp_path):
    root = require_data("lfw", "images")
    ind = tmp_path / PERSON
    ind.mkdir()
    for p in sorted((root / PERSON).glob("*.jpg"))[:20] + [sorted((root / INTRUDER).glob("*.jpg"))[0]]:
        (ind / p.name).symlink_to(p)
    arb = tmp_path / "arbitrary"
    arb.mkdir()
    people = sorted(p.name for p in root.iterdir() if p.name not in (PERSON, INTRUDER))
    for name in random.Random(0).sample(people, 40):
        src = sorted((root / name).glob("*.jpg"))[0]
        (arb / src.name).symlink_to(src)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["characterize", str(ind), "--against", str(arb), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["least_representative"].endswith(f"{INTRUDER}_0001.jpg"), summary["least_representative"]
    assert INTRUDER not in summary["most_representative"]
    assert len(summary["portraits"]) == 21
    for p in summary["portraits"]:
        assert (out / p["heatmap"]).stat().st_size > 1000
    page = (out / "index.html").read_text()
    assert "least representative" in page and "Characteristic parts" in page
    imgs, links = embedded_page(page)  # heat maps embedded: the page still shows them once moved
    assert len(imgs) >= 2 * 21 and sum(src.startswith("data:image/png") for src in imgs) >= 21
    assert len(links) >= 21
    assert set(summary["parts"]) == {"eyes", "eyebrows", "nose", "mouth"}
