"""What the `lookalike bench` commands share: their progress bars, default heads and common options."""

from __future__ import annotations

import click

from lookalike.cli.support import ProgressBar


def bar_for(quiet: bool):
    """A factory: label -> a `Progress` tqdm bar on stderr (disabled when quiet)."""
    return lambda label: ProgressBar(label, "photo", disabled=quiet)


def default_heads() -> list[str]:
    """Every registered head (those without weights are reported as skipped)."""
    from lookalike.heads import list_heads

    return list_heads()


#: `--head H` (repeatable) of every benchmark.
HEADS = click.option(
    "--head", "heads", multiple=True, help="Head to evaluate (repeatable) [default: every registered head]."
)
#: `--rerank none|metric` of the pair benchmarks.
RERANK = click.option(
    "--rerank",
    type=click.Choice(["none", "metric"]),
    default="none",
    show_default=True,
    help="metric: also score pairs by distances between the network's feature maps, plain and weighted by a "
    "similarity learnt from labelled photos, as `query --rerank metric` orders candidates (FaceNet heads).",
)
