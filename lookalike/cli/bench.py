"""`lookalike bench ...`: LFW View 2, the DoppelVer benchmark, the doppelganger protocol generator, and the
learned-similarity metrics (triplet accuracy, retrieval top-k, top-ranked precision, NDCG@6) per head."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lookalike import config
from lookalike.cli.options import HEADS, RERANK, bar_for, default_heads
from lookalike.cli.support import CONTEXT, DETECTOR


@click.group("bench", context_settings=CONTEXT)
def bench() -> None:
    """Benchmarks: LFW View 2 and DoppelVer (doppelganger / ViSE protocols), results into benchmarks/."""


@bench.command("lfw", context_settings=CONTEXT)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="LFW folder with pairs.txt and images/ [default: $LOOKALIKE_DATA/lfw].",
)
@HEADS
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("benchmarks"),
    show_default=True,
    help="Where lfw.md and lfw.json go.",
)
@click.option("--pairs", "pairs", type=int, default=None, help="Only the first N pairs of each fold (quick check).")
@click.option("--detector", type=DETECTOR, default=None, help=f"Face detector [default: {config.DEFAULT_DETECTOR}].")
@RERANK
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def lfw_cmd(
    data: Path | None,
    heads: tuple[str, ...],
    out: Path,
    pairs: int | None,
    detector: str | None,
    rerank: str,
    quiet: bool,
    as_json: bool,
) -> None:
    """LFW View 2: 10 folds, threshold fitted on 9 and tested on the 10th; accuracy ± std and ROC AUC per head.

    Each head's embeddings are cached in the index `bench-<head>` (a re-run embeds nothing new).
    """
    from lookalike.eval.lfw import run_lfw

    data = data or config.data_dir() / "lfw"
    res = run_lfw(
        data,
        list(heads) or default_heads(),
        out,
        pairs=pairs,
        progress_for=bar_for(quiet or as_json),
        rerank=rerank,
        detector=detector,
    )
    if as_json:
        click.echo(json.dumps(res, default=str))
        return
    for r in res["results"]:
        click.echo(
            f"{r['head']}: accuracy {100 * r['accuracy']:.2f}% ± {100 * r['std']:.2f}, AUC {100 * r['auc']:.2f}% "
            f"({r['pairs']} pairs; {r['photos_without_face']} of {r['photos']} photos without a face)"
        )
    for s in res["skipped"]:
        click.echo(f"{s['head']}: skipped: {s['reason']}")
    if not quiet:
        click.echo(f"wrote {out / 'lfw.md'} and {out / 'lfw.json'}", err=True)


@bench.command("doppelver", context_settings=CONTEXT)
@click.option(
    "--protocol",
    "protocols",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Protocol file in the published format (repeatable: doppelganger and ViSE). Its name starts "
    "with the protocol's name, e.g. doppelganger_lfw.txt, vise_lfw.txt.",
)
@click.option("--summary", is_flag=True, help="Only print each protocol's counts as JSON (no images needed).")
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Images root: the paths in the protocol are relative to it.",
)
@HEADS
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("benchmarks"), show_default=True)
@click.option("--note", "notes", multiple=True, help="A line for the report (e.g. how the protocols were made).")
@RERANK
@click.option("--quiet", "-q", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def doppelver_cmd(
    protocols: tuple[Path, ...],
    summary: bool,
    images: Path | None,
    heads: tuple[str, ...],
    out: Path,
    notes: tuple[str, ...],
    rerank: str,
    quiet: bool,
    as_json: bool,
) -> None:
    """DoppelVer View 2 (threshold on split 0; ACC, ROC AUC on splits 1-9) and View 1 (EM ACC, SEM) per head,
    as tables shaped like the seed's Tables 7.1/7.2 plus ROC curve PNGs in --out."""
    from lookalike.errors import LookalikeError
    from lookalike.eval.doppelver import protocol_summary, run_doppelver

    if summary:
        for p in protocols:
            click.echo(json.dumps(protocol_summary(p)))
        return
    if images is None:
        raise LookalikeError("give --images ROOT (the folder the protocol's paths are relative to), or --summary")
    res = run_doppelver(
        list(protocols),
        images,
        list(heads) or default_heads(),
        out,
        progress_for=bar_for(quiet or as_json),
        notes=list(notes),
        rerank=rerank,
    )
    if as_json:
        click.echo(json.dumps(res, default=str))
        return
    for r in res["results"]:
        v2, v1 = r["view2"], r["view1"]
        click.echo(
            f"{r['head']} {r['protocol']}: View 2 ACC {100 * v2['accuracy']:.2f}% AUC {100 * v2['auc']:.2f}%; "
            f"View 1 EM ACC {100 * v1['em_acc']:.2f}% ± {100 * v1['sem']:.2f} (SEM)"
        )
    for s in res["skipped"]:
        click.echo(f"{s['head']}: skipped: {s['reason']}")
    if not quiet:
        click.echo(f"wrote {out / 'doppelver.md'}, {out / 'doppelver.json'} and ROC PNGs", err=True)


@bench.command("make-doppelganger", context_settings=CONTEXT)
@click.option(
    "--gallery",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Labelled gallery: GALLERY/<identity>/<photo>.",
)
@click.option(
    "--pairs",
    "pairs_csv",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Doppelganger identity pairs, CSV with header 'Pair 1,Pair 2' (or identity_a,identity_b).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Protocol file to write (published format; name it doppelganger_*.txt).",
)
@click.option("--pairs-per-split", default=14000, show_default=True, help="Target pairs per split (half positive).")
@click.option("--splits", "n_splits", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--unequal-splits",
    is_flag=True,
    help="Keep every pair; splits of unequal size go to the OUT.splits sidecar (small galleries).",
)
def make_doppelganger_cmd(
    gallery: Path, pairs_csv: Path, out: Path, pairs_per_split: int, n_splits: int, seed: int, unequal_splits: bool
) -> None:
    """Make a doppelganger pair file (look-alike pairs of different people, balanced with same-person pairs, in
    person-disjoint splits, DoppelVer's format) from a gallery; prints its summary as JSON.

    By default every split is cut to the size of the smallest (half positive) so the file's consecutive folds
    are its splits, as the published format has it; --unequal-splits keeps every pair and writes OUT.splits.
    """
    from lookalike.eval.generate import make_doppelganger

    click.echo(
        json.dumps(make_doppelganger(gallery, pairs_csv, out, pairs_per_split, n_splits, seed, not unequal_splits))
    )


@bench.command("similarity", context_settings=CONTEXT)
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
    from lookalike.eval.similarity_bench import run_similarity, summary_line

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
