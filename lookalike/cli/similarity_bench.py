"""`lookalike bench similarity`: triplet accuracy, retrieval top-k, top-ranked precision and NDCG@6 per head."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lookalike import config
from lookalike.cli.options import HEADS, bar_for, default_heads
from lookalike.cli.support import CONTEXT


@click.command("similarity", context_settings=CONTEXT)
@HEADS
@click.option(
    "--triplets",
    "triplets_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Parquet/CSV triplets (anchor, positive, negative[, kind]) [default: built from the shared data: "
    "300 identity triplets and up to 10 doppelganger triplets per DoppelVer pair and direction].",
)
@click.option(
    "--rankings",
    "rankings_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV of people's rankings: query, candidate, position (average position, 0 = most alike) "
    "[default: PROXY rankings, the doppelganger photo first and 5 random other people tied].",
)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Shared data folder with lfw/images and doppelver/doppelganger_pairs_in_lfw.csv [default: $LOOKALIKE_DATA].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("benchmarks"),
    show_default=True,
    help="Where similarity.md and similarity.json go.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of every random choice (photos, distractors).")
@click.option("--limit", type=int, default=None, help="Only the first N DoppelVer pairs (quick check).")
@click.option("--pool", default=200, show_default=True, help="Distractor people for retrieval and proxy rankings.")
@click.option("--trials", default=10, show_default=True, help="Retrieval draws of distractors per anchor.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def similarity_cmd(
    heads: tuple[str, ...],
    triplets_file: Path | None,
    rankings_file: Path | None,
    data: Path | None,
    out: Path,
    seed: int,
    limit: int | None,
    pool: int,
    trials: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Seeds 001/002/004 similarity metrics: triplet accuracy (overall and per kind), retrieval top-1/2/5 over
    m = 10, 20, 60 references, top-ranked precision and NDCG@6; one line per head, tables in --out.

    Each head's embeddings are cached in the index `bench-<head>` (a re-run embeds nothing new).
    """
    from lookalike.bench.similarity_bench import run_similarity, summary_line

    res = run_similarity(
        list(heads) or default_heads(),
        out,
        triplets_file=triplets_file,
        data=data or config.data_dir(),
        seed=seed,
        progress_for=bar_for(quiet or as_json),
        rankings_file=rankings_file,
        max_pairs=limit,
        pool=pool,
        trials=trials,
    )
    if as_json:
        click.echo(json.dumps(res, default=str))
        return
    for r in res["results"]:
        click.echo(summary_line(r))
    for s in res["skipped"]:
        click.echo(f"{s['head']}: skipped: {s['reason']}")
    if not quiet:
        rk = "proxy rankings" if res["rankings"]["source"] == "proxy" else f"rankings {res['rankings']['source']}"
        click.echo(f"wrote {out / 'similarity.md'} and {out / 'similarity.json'} ({rk})", err=True)
