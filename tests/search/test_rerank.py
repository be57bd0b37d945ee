"""`lookalike query --rerank metric` on a real index: same answers' shape, reordered, metric cached."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lookalike.cli.app import cli
from lookalike.errors import LookalikeError
from lookalike.search.rerank import metric_file_name
from tests.conftest import require_data


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
    assert metric_file_name("identity:Tony_Blair") in cached


def _rerank(index, photo, *extra):
    args = ["query", str(photo), "-k", "5", "--index", str(index), "--json", "--rerank", "metric", *extra]
    return CliRunner().invoke(cli, args)


def test_query_rerank_metric_sources(lfw10_index):
    """A photo the index does not hold: each metric source reranks it, says which it used, Blair stays first."""
    q = require_data("lfw", "images", "Tony_Blair", "Tony_Blair_0100.jpg")
    for source, how in (("global", "global"), ("photo", "query augmentations"), ("auto", "global")):
        res = _rerank(lfw10_index, q, "--metric-from", source)
        assert res.exit_code == 0, res.output
        a = json.loads(res.output.strip().splitlines()[-1])
        assert a["rerank"] == how
        assert a["results"][0]["identity"] == "Tony_Blair"
    # an identity metric needs a labelled identity: a clear one-line error, not a silent fallback
    # (the console entry point prints a LookalikeError as one line and exits 2)
    res = _rerank(lfw10_index, q, "--metric-from", "identity")
    assert isinstance(res.exception, LookalikeError)
    assert "no identity metric" in str(res.exception) and "--identity" in str(res.exception)
    res = _rerank(lfw10_index, q, "--metric-from", "identity", "--identity", "Tony_Blair")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["rerank"] == "identity Tony_Blair"
    assert (lfw10_index / "metrics" / metric_file_name("global")).exists()
