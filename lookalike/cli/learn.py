"""Commands of the learned-similarity features: characterize, train, make-triplets, anonymize-candidates."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lookalike import optional
from lookalike.cli.support import CONTEXT, make_bar
from lookalike.errors import LookalikeError


def _say(quiet: bool, msg: str) -> None:
    if not quiet:
        click.echo(msg, err=True)


@click.command("characterize", context_settings=CONTEXT)
@click.argument("photos", type=click.Path(exists=True, path_type=Path))
@click.option("--against", help="Arbitrary faces: a folder of photos, or an index (name or folder).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder [./characterize-NAME].")
@click.option("--arbitrary", default=100, show_default=True, help="How many arbitrary faces to learn against.")
@click.option("--steps", default=150, show_default=True, type=click.IntRange(min=1),
              help="Optimiser steps of the metric.")  # fmt: skip
@click.option("--force", is_flag=True, help="Write into --out even when it holds files this command did not write.")
@click.option("--quiet", "-q", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def characterize_cmd(
    photos: Path,
    against: str | None,
    out: Path | None,
    arbitrary: int,
    steps: int,
    force: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Characterise one person from PHOTOS (a folder of their photos): what sets their face apart from others
    (a similarity learnt from their photos), heat maps of the face parts that matter,
    most/least representative portraits and characteristic face parts, as summary.json + index.html."""
    optional.require("torch", "characterize (a metric learnt on FaceNet's feature maps)")
    from lookalike.faces.scan import scan_source
    from lookalike.similarity.characterize import (
        arbitrary_from,
        characterize,
        check_output_folder,
        default_arbitrary,
        write_outputs,
    )

    out = out or Path.cwd() / f"characterize-{photos.name}"
    if not force:
        check_output_folder(out)  # before minutes of work, not after
    ind = scan_source(photos).photos  # stored text: a name that is not UTF-8 stays printable and writable
    if against is not None:
        from lookalike.index.summary import named_folder

        where = Path(against) if Path(against).exists() else named_folder(against)
        if not where.exists():
            raise LookalikeError(f"--against {against}: no such folder, and no index of that name")
        arb, geo = arbitrary_from(where, arbitrary)
    else:
        arb, geo = [str(p) for p in default_arbitrary({photos.name}, arbitrary)], {}
    arb = [p for p in arb if Path(p).resolve().parent != photos.resolve()]
    _say(quiet or as_json, f"characterising {len(ind)} photos of {photos.name} against {len(arb)} faces ...")
    ch = characterize(ind, arb, geometry=geo, steps=steps)
    summary = write_outputs(ch, out, photos.name)
    if as_json:
        click.echo(json.dumps(summary))
    elif not quiet:
        click.echo(f"most representative:  {summary['most_representative']}")
        click.echo(f"least representative: {summary['least_representative']}")
        click.echo(f"characteristic parts: {', '.join(summary['characteristic_parts']) or 'none'}")
        click.echo(f"page: {out / 'index.html'}", err=True)


@click.group("train", context_settings=CONTEXT)
def train_group() -> None:
    """Train a look-alike head on triplets (the result is a head named KIND:NAME for index and query)."""
    optional.require("torch", "train")


def pick_backbone(backbone: str) -> str:
    """`auto`: arcface-r50 when its weights are in the weights directory (the published recipe's backbone), else
    facenet-casia."""
    if backbone != "auto":
        return backbone
    from lookalike.heads import get_head_spec
    from lookalike.weights import resolve

    try:
        resolve(get_head_spec("arcface-r50").weights, "arcface-r50")
        return "arcface-r50"
    except LookalikeError:
        return "facenet-casia"


def _train(
    kind: str,
    triplets: Path,
    name: str,
    hierarchical: bool,
    epochs: int,
    quiet: bool,
    as_json: bool,
    backbone: str = "facenet-casia",
) -> None:

    from lookalike.eval.lfw import bench_index_dir
    from lookalike.heads import create_head
    from lookalike.similarity.facecrops import geometry_from_index
    from lookalike.similarity.train import load_triplets, save_trained, train

    head = create_head(pick_backbone(backbone))
    trip = load_triplets(triplets)
    geo_ix = bench_index_dir("sface")  # boxes and landmarks of LFW photos, when `bench lfw` has run
    geometry = geometry_from_index(geo_ix) if geo_ix.exists() else None
    n_photos = len(set(trip.anchor) | set(trip.positive) | set(trip.negative))
    bar = make_bar(n_photos, "backbone", "photo", disabled=quiet or as_json)
    payload, report = train(
        trip, kind, head, hierarchical, epochs, geometry=geometry, progress=bar.update,
        log=None if quiet or as_json else (lambda m: click.echo(m, err=True)),
    )  # fmt: skip
    bar.close()
    report["triplet_file"] = str(triplets)
    dest = save_trained(payload, report, name)
    report["weights"] = str(dest)
    report["head"] = f"{kind}:{name}"
    dest.with_name(dest.stem + ".report.json").write_text(json.dumps(report, indent=2))
    if as_json:
        click.echo(json.dumps(report))
    elif not quiet:
        b, a = report["accuracy_before"], report["accuracy_after"]
        click.echo(f"head {report['head']}: held-out triplet accuracy {b['held_out']:.3f} -> {a['held_out']:.3f}")
        click.echo(f"weights: {dest}", err=True)


_opts = [
    click.option("--triplets", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True),
    click.option("--name", default="default", show_default=True, help="Head name: KIND:NAME."),
    click.option("--epochs", default=5, show_default=True),
    click.option(
        "--backbone",
        type=click.Choice(["auto", "facenet-casia", "arcface-r50"]),
        default="auto",
        show_default=True,
        help="Frozen backbone: auto takes arcface-r50 when its weights are present, else facenet-casia.",
    ),
    click.option("--quiet", "-q", is_flag=True),
    click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
]


def _with_opts(f):
    for o in reversed(_opts):
        f = o(f)
    return f


@train_group.command("lookalike", context_settings=CONTEXT)
@_with_opts
@click.option("--hierarchical", is_flag=True, help="Also learn from 10 intermediate layers of the frozen backbone.")
def train_lookalike(
    triplets: Path, name: str, epochs: int, backbone: str, quiet: bool, as_json: bool, hierarchical: bool
) -> None:
    """Train a look-alike head from rated triplets: which of two faces looks more like a third (a triplet loss on
    distances, margin 0.05, Adam 1e-4, batches of 32, half of them easy triplets)."""
    if hierarchical and backbone == "auto":
        backbone = "facenet-casia"  # seed 002's layers are FaceNet's
    _train("lookalike", triplets, name, hierarchical, epochs, quiet, as_json, backbone)


@train_group.command("perface", context_settings=CONTEXT)
@_with_opts
def train_perface(triplets: Path, name: str, epochs: int, backbone: str, quiet: bool, as_json: bool) -> None:
    """Fine-tune a head for how people perceive similarity, from unanimously rated triplets (a triplet loss on
    cosine, margin 0.1, SGD 0.01, momentum 0.9, weight decay 5e-4, batches of 32)."""
    _train("perface", triplets, name, False, epochs, quiet, as_json, backbone)


@click.command("make-triplets", context_settings=CONTEXT)
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--identity", "n_identity", default=2000, show_default=True, help="Identity triplets.")
@click.option("--per-pair", default=60, show_default=True, help="Doppelganger triplets per pair and direction.")
@click.option("--hard-from", type=click.Path(path_type=Path), help="Index of LFW whose embedding picks negatives.")
def make_triplets_cmd(out: Path, n_identity: int, per_pair: int, hard_from: Path | None) -> None:
    """Write a triplet file (Parquet, or CSV by suffix) from LFW and the DoppelVer pairs in it."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from lookalike import config
    from lookalike.eval.lfw import bench_index_dir
    from lookalike.similarity.triplets import build_triplets

    if hard_from is None and bench_index_dir("sface").exists():  # `lookalike bench lfw --head sface` made it
        hard_from = bench_index_dir("sface")
    t = build_triplets(config.data_dir(), n_identity, per_pair, hard_from)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        pcsv.write_csv(t, out)
    else:
        pq.write_table(t, out)
    kinds = t["kind"].to_pylist()
    click.echo(f"{out}: {t.num_rows} triplets ({kinds.count('doppel')} doppel, {kinds.count('identity')} identity)")


@click.command("anonymize-candidates", context_settings=CONTEXT)
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pool", required=True, help="Index of swap candidates.")
@click.option("--attributes", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="CSV: path or identity, gender (male/female), age (young/older).")  # fmt: skip
@click.option("-k", default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def anonymize_cmd(image: Path, pool: str, attributes: Path, k: int, as_json: bool) -> None:
    """Faces of people who share IMAGE's attributes but look least like it: candidates to stand in for it
    (the attribute group chosen by the upper end of its 95% confidence interval, then its least similar faces)."""
    from lookalike.index.summary import named_folder
    from lookalike.search.query import Searcher
    from lookalike.similarity.anonymize import choose, read_attributes

    s = Searcher(named_folder(pool))
    ans = s.query_photos([image], k=1, include_self=True)[0]
    if ans.error:
        raise LookalikeError(ans.error)
    q = ans.face.embedding  # the query's own face and vector: no second detection
    t = s.store.faces(["vector_id", "path", "identity", "embedding"])
    from lookalike.index.store import vectors_of

    vec = vectors_of(t, s.store.dim)
    attr = read_attributes(attributes)
    paths, idents = t["path"].to_pylist(), t["identity"].to_pylist()
    attrs = [attr.get(p) or (attr.get(i) if i else None) for p, i in zip(paths, idents, strict=True)]
    c = choose(q, vec, attrs, k)
    out = {
        "query": str(image),
        "group": c.group,
        "group_distance": c.group_distance,
        "candidates": [
            {"rank": r + 1, "distance": d, "path": paths[i], "identity": idents[i]}
            for r, (i, d) in enumerate(zip(c.rows, c.distances, strict=True))
        ],
    }
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"{image}: group {c.group} (95% CI upper distance {c.group_distance[c.group]:.3f})")
    for x in out["candidates"]:
        click.echo(f"  {x['rank']:>3}  {x['distance']:.3f}  {x['identity'] or '-':<28} {x['path']}")


@click.command("hybrid", context_settings=CONTEXT)
@click.argument("photos_a", type=click.Path(exists=True, path_type=Path))
@click.argument("photos_b", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="The hybrid PNG [./hybrid-A-B.png].")
@click.option("--portraits", nargs=2, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The portraits of A and B to compose (else the most symmetric: seed 000 eq. 10).")  # fmt: skip
@click.option("--html", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a page: portraits, PCAMs, which part came from whom, the result.")  # fmt: skip
@click.option("--steps", default=150, show_default=True, type=click.IntRange(min=1),
              help="Optimiser steps of each metric.")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="Print what was chosen as JSON.")
def hybrid_cmd(
    photos_a: Path,
    photos_b: Path,
    out: Path | None,
    portraits: tuple[Path, Path] | None,
    html: Path | None,
    steps: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Compose one face of two people's most characteristic parts (seed 000, section 6.2) from PHOTOS_A and
    PHOTOS_B (a folder, list file or photo of each; >= 2 with a face): each person characterized against the
    other, the most symmetric portraits, each face part from the one whose heat map is stronger there."""
    optional.require("torch", "hybrid (a metric learnt on FaceNet's feature maps)")
    optional.require("dlib", "hybrid (68 face landmarks to cut the parts)")
    from lookalike.faces.scan import scan_source
    from lookalike.similarity.hybrid import make_hybrid
    from lookalike.similarity.hybrid_page import write_page, write_png

    names = tuple(p.stem if p.is_file() else p.name for p in (photos_a, photos_b))
    out = out or Path.cwd() / f"hybrid-{names[0]}-{names[1]}.png"
    sets = [scan_source(p).photos for p in (photos_a, photos_b)]
    _say(quiet or as_json, f"characterising {names[0]} ({len(sets[0])} photos) and {names[1]} ({len(sets[1])}) "
                           "against each other ...")  # fmt: skip
    h = make_hybrid(sets[0], sets[1], names=names, portraits=tuple(portraits) if portraits else (None, None),
                    steps=steps)  # fmt: skip
    write_png(h, out)
    if html is not None:
        write_page(h, html, f"hybrid of {names[0]} and {names[1]}")
    summary = {**h.as_json(), "out": str(out), "html": None if html is None else str(html)}
    if as_json:
        click.echo(json.dumps(summary))
    elif not quiet:
        for seg, who in summary["segments"].items():
            click.echo(f"{seg:<11} from {who}")
        click.echo(f"hybrid: {out}", err=True)
        if html is not None:
            click.echo(f"page: {html}", err=True)


#: What `lookalike.cli.app` registers.
LEARN_COMMANDS = [characterize_cmd, hybrid_cmd, train_group, make_triplets_cmd, anonymize_cmd]
