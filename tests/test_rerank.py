"""`lookalike query --rerank metric` on a real index: same answers' shape, reordered, metric cached."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lookalike.cli import cli

from .conftest import require_data


def test_query_rerank_metric_identity_and_photo(lfw10_index):
    q = require_data("gallery", "lfw10", "Tony_Blair", "Tony_Blair_0003.jpg")
    for extra in (["--identity", "Tony_Blair"], []):
        args = ["query", str(q), "-k", "5", "--index", str(lfw10_index), "--json", "--rerank", "metric", *extra]
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
        a = json.loads(res.output.strip().splitlines()[-1])
        assert [r["rank"] for r in a["results"]] == [1, 2, 3, 4, 5]
        assert a["results"][0]["identity"] == "Tony_Blair"
    cached = sorted(p.name for p in (lfw10_index / "metrics").glob("*.pt"))
    assert "Tony_Blair.pt" in cached
