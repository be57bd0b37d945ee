"""`lookalike dedup` and `lookalike mine-vise`: turn a raw dump into a clean, hard test set."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import click

from lookalike import config
from lookalike.cli.support import CONTEXT, COSINE, ProgressBar, make_bar
from lookalike.errors import LookalikeError
from lookalike.heads.calibration import FMRS, fmr_key
from lookalike.index.summary import locate, named_folder


def folder_index_path(folder: Path, head_name: str) -> Path:
    """Where a photo folder's own index lives: `<index home>/folders/<name>-<digest of its absolute path>-<head>`,
    so `/a/photos` and `/b/photos` never share one."""
    import hashlib

    from lookalike.paths import to_text

    absolute = to_text(os.path.abspath(folder))
    digest = hashlib.sha256(absolute.encode("utf-8")).hexdigest()[:10]
    return config.index_home() / "folders" / f"{Path(absolute).name}-{digest}-{head_name}"


def _index_folder(folder: Path, head_name: str, quiet: bool, device: str | None = None) -> Path:
    """Index a photo folder into its own index (`folder_index_path`), incrementally and pruned: the index
    holds exactly the folder's photos as they are now; identities from sub-folders."""
    from lookalike.index.runner import IndexOptions, run_index
    from lookalike.index.settings import resolve

    settings = resolve(folder, out=folder_index_path(folder, head_name), head=head_name)  # the index's own rules
    out = settings.out
    head, detector = settings.load(device)
    bar = ProgressBar(f"index {folder.name}", "photo", disabled=quiet)
    try:
        run_index(folder, out, head, detector, IndexOptions(prune=True), progress=bar)
    finally:
        bar.close()
    return out


def _dedup_head(requested: str | None) -> str:
    """--head, else the first general image head whose weights are here (dinov2, then clip), else sface."""
    from lookalike.errors import WeightsMissingError
    from lookalike.heads import get_head_spec
    from lookalike.weights import resolve

    if requested:
        return requested
    for name in ("dinov2", "clip"):
        try:
            resolve(get_head_spec(name).weights, name)
            return name
        except WeightsMissingError:
            continue
    return "sface"


def _row_bar(total: int, desc: str, quiet: bool):
    bar = make_bar(total, desc, "vec", disabled=quiet)
    return bar, bar.update


@click.command("dedup", context_settings=CONTEXT)
@click.argument("target")
@click.option(
    "--threshold",
    default=config.DEDUP_COSINE,
    show_default=True,
    type=COSINE,
    help="Similar shots: face cosine above this (shown, never removed); copies are told by their pixels.",
)
@click.option(
    "--head",
    "head_name",
    default=None,
    help="For a folder: the head to embed with [default: dinov2 or else clip when its weights exist, else sface]; "
    "for an index: must be the index's head.",
)
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Page of the pairs.")
@click.option(
    "--remove",
    is_flag=True,
    help="Take every copy (exact or edited) out of the index but each group's kept photo (on record).",
)
@click.option("--restore", is_flag=True, help="Put back every photo a --remove took out.")
@click.option("--quiet", "-q", is_flag=True)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"exact": [[a, b]], "copies": [...], "similar": [...], "groups": [...]} as one object.',
)
def dedup_cmd(
    target: str,
    threshold: float,
    head_name: str | None,
    html_out: Path | None,
    remove: bool,
    restore: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Copies among the photos of an index (NAME or folder) or of a photo folder, with three answers per pair:
    exact copy (same bytes), same photo edited (resized, re-encoded, cropped, rotated, recoloured, bordered,
    captioned, screenshotted: told by keypoints one transform explains and the faces' pixels), or similar shot
    (the same person in another photo: face cosine > --threshold; shown, never removed). Copies are grouped; a
    group keeps its oldest file.

    A photo folder gets an index of its own (under the index home's `folders/`, keyed by the folder's absolute
    path), updated incrementally and pruned, so it holds exactly the folder's photos. -q hides progress and
    the summary line, never the pairs; --json prints one object.
    """
    from lookalike.curate.dedup import (
        COPY,
        EXACT,
        SIMILAR,
        find_duplicates,
        plan_removal,
        remove_duplicates,
        restore_removed,
        write_html,
    )
    from lookalike.index.store import FaceStore

    quiet_bars = quiet or as_json
    ix = named_folder(target)
    if FaceStore.exists(ix) or FaceStore.looks_like_index(ix):  # a damaged index is an error, not photos
        store = FaceStore.open(ix)
        if head_name:
            store.check_head(head_name)
        how = "the index's head"
    elif Path(target).is_dir():
        how = "--head" if head_name else None
        head_name = _dedup_head(head_name)
        how = how or {"dinov2": "dinov2 weights found", "clip": "dinov2 weights absent, clip weights found"}.get(
            head_name, "dinov2 and clip weights absent, fallback"
        )
        ix = _index_folder(Path(target), head_name, quiet_bars)
    else:
        raise LookalikeError(f"{target} is neither an index nor a photo folder")
    if restore:
        n = restore_removed(ix)
        click.echo(json.dumps({"restored": n}) if as_json else f"restored {n} photos into {ix}")
        return
    store = FaceStore.open(ix)
    bar, tick = _row_bar(store.manifest["counts"]["faces"], "range search", quiet_bars)
    check = make_bar(None, "comparing pixels", "pair", disabled=quiet_bars)
    try:
        dups = find_duplicates(ix, threshold, progress=tick, verify_progress=check.update)
    finally:
        bar.close()
        check.close()
    if not quiet and not as_json:
        click.echo(f"head: {dups.head} ({how}); index {ix}", err=True)
    if html_out:
        write_html(dups, html_out)
    removed = 0
    if remove:
        removed = remove_duplicates(ix, plan_removal(dups))
    if as_json:
        click.echo(json.dumps({**dups.as_json(), "head": dups.head, "index": str(ix), "removed": removed}))
        return
    if not quiet:
        copies = len(dups.of(EXACT, COPY))
        click.echo(f"{copies} copies ({len(dups.of(EXACT))} exact) in {len(dups.groups)} groups and "
                   f"{len(dups.of(SIMILAR))} similar shots among {dups.photos} photos")  # fmt: skip
    for g in dups.groups:
        click.echo(f"  keep   {g.keep}")
        for path, kind in g.copies:
            click.echo(f"  {'exact' if kind == EXACT else 'copy':<6} {path}")
    for p in dups.of(SIMILAR):
        click.echo(f"  similar {p.cosine:.4f} {p.a}  {p.b}")
    if html_out:
        click.echo(f"wrote {html_out}", err=True)
    if remove:
        click.echo(f"removed {removed} photos from {ix} (record: {ix / 'removed.parquet'}; undo: --restore)")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@click.command("mine-vise", context_settings=CONTEXT)
@click.option("--index", "index_name", default=None, help="Index (name or folder) whose labelled main faces to mine.")
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Or a labelled photo folder IMAGES/<identity>/<photo> (indexed first with --head).",
)
@click.option("--head", "head_name", default=None, help="Head (for --images; with --index it must match).")
@click.option("--threshold", default=config.VISE_COSINE, show_default=True, type=COSINE,
              help="Keep different-identity pairs above this cosine.")  # fmt: skip
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Protocol file (published format; name it vise_*.txt). All mined pairs also go to OUT.negatives.parquet.",
)
@click.option(
    "--splits-from",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A doppelganger protocol file: its identities keep their splits here.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write paths relative to this folder [default: --images, or the folder above the identity folders].",
)
@click.option("--splits", "n_splits", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--unequal-splits",
    is_flag=True,
    help="Keep each split's own size (min of its negatives and positives); splits go to OUT.splits.",
)
@click.option("--quiet", "-q", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def mine_vise_cmd(
    index_name: str | None,
    images: Path | None,
    head_name: str | None,
    threshold: float,
    out: Path,
    splits_from: Path | None,
    root: Path | None,
    n_splits: int,
    seed: int,
    unequal_splits: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Mine hard look-alike pairs (DoppelVer's ViSE pairs): every pair of photos of different identities with
    cosine above --threshold (FAISS range search, image by image, never an N x N matrix), balanced with as many
    same-identity pairs, in identity-disjoint splits, written in the published DoppelVer format."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lookalike.atomic import atomic_write_with
    from lookalike.curate.mining import mine_vise
    from lookalike.eval.protocols import load_protocol, relative_to, write_protocol
    from lookalike.index.store import FaceStore, vectors_of

    if (index_name is None) == (images is None):
        raise LookalikeError("give exactly one of --index NAME or --images DIR")
    if images is not None:
        if not head_name:
            raise LookalikeError("--images needs --head (e.g. --head dinov2, or sface when DINOv2 weights are absent)")
        ix = _index_folder(images, head_name, quiet or as_json)
    else:
        ix = named_folder(index_name)
        store = FaceStore.open(ix)
        if head_name:
            store.check_head(head_name)
    store = FaceStore.open(ix)
    t = store.faces(["path", "is_main", "identity", "embedding"])
    t = t.filter(t["is_main"])
    paths, ident = t["path"].to_pylist(), t["identity"].to_pylist()
    if not any(x is not None for x in ident):
        raise LookalikeError(f"index {ix} has no identity labels: index a folder of <identity>/<photo> or use --labels")
    vec = vectors_of(t, store.dim)
    pinned = None
    if splits_from:
        dp = load_protocol(splits_from)
        pinned = {
            n: int(k) for ids, ks in ((dp.identity_a, dp.split), (dp.identity_b, dp.split)) for n, k in zip(ids, ks)
        }
    rss_before = _peak_rss_mb()
    bar, tick = _row_bar(len(paths), "range search", quiet or as_json)
    proto, stats, negs = mine_vise(
        paths, ident, vec, threshold, pinned, n_splits, seed, progress=tick, equal_splits=not unequal_splits
    )
    bar.close()
    if stats.pairs == 0 or (not unequal_splits and min(stats.pairs_per_split) == 0):
        raise LookalikeError(
            f"mined {stats.mined_negatives} different-identity pairs above {threshold}, but some split has no "
            "negative or no positive pair: lower --threshold or use a larger gallery"
        )
    if root is None:
        root = images or Path(os.path.commonpath([os.path.dirname(os.path.dirname(p)) for p in paths]))
    write_protocol(relative_to(proto, root), out)
    neg_file = out.with_name(out.name + ".negatives.parquet")
    table = pa.table(
        {
            "path_a": [paths[k] for k in negs["a"]],
            "path_b": [paths[k] for k in negs["b"]],
            "identity_a": [ident[k] for k in negs["a"]],
            "identity_b": [ident[k] for k in negs["b"]],
            "score": pa.array(negs["score"], pa.float32()),
            "split_a": negs["split_a"],
            "split_b": negs["split_b"],
        }
    )
    atomic_write_with(neg_file, lambda tmp: pq.write_table(table, tmp))
    n = len(paths)
    report = {
        **stats.__dict__,
        "index": str(ix),
        "head": store.head,
        "file": str(out),
        "negatives_file": str(neg_file),
        "root": str(root),
        "summary": proto.summary(),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_rss_mb_before_search": round(rss_before, 1),
        "nxn_float32_mb": round(n * n * 4 / 2**20, 1),
        "vectors_mb": round(vec.nbytes / 2**20, 1),
    }
    if as_json:
        click.echo(json.dumps(report, default=str))
        return
    click.echo(
        f"{stats.mined_negatives} different-identity pairs above {threshold} among {n} photos ({store.head}); "
        f"kept {stats.pairs // 2} with as many same-identity pairs in {n_splits} splits {stats.pairs_per_split} "
        f"-> {out}"
    )
    click.echo(
        f"peak memory {report['peak_rss_mb']:.0f} MB "
        f"(an N x N float32 matrix would be {report['nxn_float32_mb']:.0f} MB)",
        err=True,
    )


@click.command("cluster", context_settings=CONTEXT)
@click.argument("index_name", required=False)
@click.option("--fmr", type=click.Choice([fmr_key(f) for f in FMRS[1:]]), default=fmr_key(config.CLUSTER_FMR),
              show_default=True,
              help="Join two faces when they score at or above the same-person threshold of this false match "
              "rate.")  # fmt: skip
@click.option("--threshold", type=COSINE, default=None, help="Join at this cosine instead of a measured threshold.")
@click.option("-k", default=config.CLUSTER_K, show_default=True, type=click.IntRange(min=1),
              help="Neighbours looked at per face.")  # fmt: skip
@click.option("--ignore-labels", is_flag=True, help="Group as if no face were labelled (to check the grouping).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def cluster_cmd(index_name: str | None, fmr: str, threshold: float | None, k: int, ignore_labels: bool,
                as_json: bool) -> None:  # fmt: skip
    """Group the faces of an index into people, labelled or not: each face joins the group that weighs most
    among its close neighbours. Labelled faces keep their identity and name their group; the others become
    person-1, person-2, ... (kept across runs). Written to people.parquet in the index; `query` shows it."""
    from lookalike.curate.cluster import cluster_index

    s = cluster_index(locate(index_name), threshold=threshold, fmr=float(fmr), k=k,
                      use_labels=not ignore_labels)  # fmt: skip
    if as_json:
        click.echo(json.dumps(s))
        return
    several, named = s["people_with_several_faces"], s["named_by_labels"]
    click.echo(f"{s['faces']} faces -> {s['people']} people ({several} with several faces, {named} named by labels) "
               f"at cosine >= {s['threshold']:.3f}, in {s['seconds']} s")  # fmt: skip
    for x in s["largest"]:
        click.echo(f"  {x['faces']:>6}  {x['person']}")
