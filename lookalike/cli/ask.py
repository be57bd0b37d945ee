"""The asking verbs: `lookalike query` (who looks like this face?), `verify` (are these two the same person?) and
`serve` (the same, warm, as a local web app and JSON API)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from lookalike import optional
from lookalike.cli.support import CONTEXT, COSINE, emit_json
from lookalike.errors import LookalikeError
from lookalike.heads.calibration import DEFAULT_FMR, FMRS, fmr_key
from lookalike.index.summary import locate
from lookalike.search.asking import MAX_K

# ------------------------------------------------------------------------------------------------ query
#: The false match rates thresholds are measured at (`lookalike.heads.calibration.FMRS`), as typed.
FMR_CHOICES = tuple(fmr_key(f) for f in FMRS)
DEFAULT_FMR_TEXT = fmr_key(DEFAULT_FMR)


@click.command("query", context_settings=CONTEXT)
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
    if rerank == "metric":
        optional.require("torch", "--rerank metric (a metric learnt on FaceNet's feature maps)")
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
                emit_json(x)
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
        with requests.Session() as session:
            session.trust_env = False  # the server is on this machine (loopback, `find_server`): no proxy from env
            r = session.post(f"{url}/query", json={"index": str(ix), "paths": list(sent), **ask}, timeout=(0.5, 3600))
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
            emit_json(a)
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
@click.command("serve", context_settings=CONTEXT)
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


@click.command("verify", context_settings=CONTEXT)
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
        emit_json(v.as_json())
    else:
        what = "same person" if v.same_person else "different people"
        cmp = ">=" if v.same_person else "<"
        rates = ""
        if v.point is not None:
            rates = (f"; at this threshold {100 * v.point.fmr:.2g}% of different-person pairs of LFW match, "
                     f"{100 * v.point.tmr:.1f}% of same-person pairs")  # fmt: skip
        click.echo(f"{what}: cosine {v.score:.3f} {cmp} {v.threshold:.3f} ({v.head}, {v.detector}{rates})")
    sys.exit(0 if v.same_person else 1)
