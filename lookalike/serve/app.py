"""`lookalike serve`: a JSON API over one or more indexes, with their heads and FAISS indexes loaded once.

Endpoints (the JSON shapes are the CLI's `--json` ones):
- `GET /health`: `{"indexes": {name: folder}, "pid", "answered": queries answered so far}`.
- `POST /query`: JSON `{"index", "paths": [...], "k", "mode", "face", "all_faces", "fmr", "include_self",
  "identity"}`, or a multipart upload (field `photo`, the other fields as form values): a list of answers as
  `lookalike query --json` prints them.
- `POST /verify`: JSON `{"a", "b", "index", "fmr", "threshold"}` (paths on this machine), or uploads `a` and `b`:
  the verdict as `lookalike verify --json` prints it.
- `GET /faces/{vector_id}?index=NAME`: the stored record of one face (path, box, identity, ...), by the vector id
  that answers carry.
- `GET /people` with `Accept: application/json`: every person (labelled identities, or the groups `lookalike
  cluster` found) and their number of faces.

The same server serves the web app's pages (`lookalike/serve/pages.py`): Ask, People, a person's faces, Review.

A bad request is a 4xx with `{"error": one line}`; the server stays up. Models run one request at a time per
index (a lock), in a worker thread, so the event loop keeps answering `/health`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lookalike.errors import LookalikeError
from lookalike.faces.photos import Photo
from lookalike.index.layout import MANIFEST, REMOVED
from lookalike.serve.guard import MAX_FORM_FIELDS, MAX_FORM_FILES, MAX_UPLOAD


class Held:
    """One index, warm: its searcher (head, detector, FAISS) and a lock for its models; reloaded when the index
    changes on disk (another `lookalike index`, a removal in Review)."""

    def __init__(self, name: str, path: Path, device: str | None) -> None:
        self.name, self.path, self.device = name, path, device
        self.lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        from lookalike.search.query import Searcher

        self.searcher = Searcher(self.path, device=self.device, metadata="memory")  # a server answers many
        _ = self.searcher.analyzer  # detector loaded now, not on the first request
        self.generation = int(self.searcher.store.manifest.get("generation", -1))
        self._vectors: np.ndarray | None = None

    def _on_disk(self) -> int:
        import json

        try:
            return int(json.loads((self.path / MANIFEST).read_text()).get("generation", -1))
        except (OSError, ValueError):
            return self.generation

    def refresh(self) -> None:
        """Reload when the index on disk is another generation than the one held."""
        if self._on_disk() != self.generation:
            with self.lock:
                if self._on_disk() != self.generation:
                    self._load()

    def people(self) -> tuple[list[str | None], str]:
        """Each face's person (rows in the searcher's order) as the user sees it (`Searcher.people`)."""
        return self.searcher.people()

    def vectors(self) -> np.ndarray:
        """The stored vectors in the searcher's row order (loaded on first use)."""
        if self._vectors is None:
            from lookalike.index.store import vectors_of

            t = self.searcher.store.faces(["vector_id", "embedding"])
            order = np.argsort(t["vector_id"].to_numpy())
            self._vectors = vectors_of(t, self.searcher.store.dim)[order]
        return self._vectors

    def removed_count(self) -> int:
        import pyarrow.parquet as pq

        record = self.path / REMOVED
        try:
            return pq.read_metadata(record).num_rows if record.exists() else 0
        except OSError:
            return 0


#: Pixels of an uploaded photo decoded at most (the index's own default limit would take 120 MP per request).
MAX_UPLOAD_PIXELS = 50_000_000
#: Photos and texts asked about in one request (a larger batch: several requests, or `lookalike query` locally).
MAX_QUESTIONS = 256


def _decode_upload(data: bytes, name: str, limit: int = MAX_UPLOAD) -> Photo:
    """An upload decoded as the intake decodes photos (`faces.photos.photo_from_bytes`: EXIF upright, any format
    it reads, hostile bytes a reason, sha256 of the bytes), within `limit` bytes and `MAX_UPLOAD_PIXELS`; else a
    one-line error. Named by its file name alone (a client's path means nothing here)."""
    from lookalike.faces.photos import photo_from_bytes

    name = Path(name.replace("\\", "/")).name or "upload"
    if len(data) > limit:
        raise LookalikeError(f"{name}: {len(data) / 2**20:.1f} MB is over the {limit / 2**20:.1f} MB upload limit")
    photo = photo_from_bytes(data, name, MAX_UPLOAD_PIXELS)
    if not isinstance(photo, Photo):
        raise LookalikeError(f"{name}: not a readable photo ({photo.reason})")
    return photo


def create_app(indexes: dict[str, Path], device: str | None = None, on_stop=None, allow_paths: bool = True,
               max_upload: int = MAX_UPLOAD, hosts: Iterable[str] | None = None):  # fmt: skip
    """The app holding `indexes` (name -> folder), each loaded now, behind the front door (`serve.guard`);
    `on_stop()` runs when the server shuts down (a signal included: uvicorn re-raises it after the shutdown, past
    any `finally` of the caller).

    allow_paths: take photos named by their path on this machine (local callers); False (a server other machines
    reach) takes uploads only, so nobody elsewhere can have it open this machine's files, change the index
    (Review) or learn its folders. max_upload: bytes of one photo. hosts: the Host names answered (default:
    loopback names only).
    """
    import contextlib
    import secrets

    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from lookalike.heads.calibration import DEFAULT_FMR
    from lookalike.search.asking import check_face, check_fmr, check_k, check_mode, check_paths, check_threshold
    from lookalike.serve.guard import LOOPBACK_HOSTS, FrontDoor, is_loopback

    held = {name: Held(name, Path(path), device) for name, path in indexes.items()}
    token = secrets.token_urlsafe(32)  # the pages' forms carry it; a page elsewhere cannot read it

    async def decode(data: bytes, name: str) -> Photo:
        """Decoded in a worker thread: a 49 MP photo must not stall the event loop (`/health`, other asks)."""
        return await run_in_threadpool(_decode_upload, data, name, max_upload)

    def shown_path(request: Request, path: str) -> str:
        """A stored photo path as a client may see it: whole for this machine, the file name for others."""
        return path if allow_paths or is_loopback(request.client.host if request.client else None) else Path(path).name

    def find(name: str | None) -> Held:
        if name is None and len(held) == 1:
            return next(iter(held.values()))
        if name in held:
            return held[name]
        for h in held.values():  # the CLI sends the folder it resolved
            if name is not None and Path(name).resolve() == h.path.resolve():
                return h
        if name is None:
            raise LookalikeError(f"several indexes are served ({', '.join(held)}): say which with index=NAME")
        raise LookalikeError(f"index {name!r} is not served here (serving: {', '.join(held)})")

    def pick(name: str | None) -> Held:
        h = find(name)
        h.refresh()
        return h

    async def fields(request: Request) -> tuple[dict, dict[str, Photo]]:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS,
                                      max_part_size=max_upload + 1)  # fmt: skip
            items = list(form.multi_items())
            values = {k: v for k, v in items if not isinstance(v, UploadFile)}
            if "paths" in values or "a" in values or "b" in values:  # photo paths only in a JSON body
                raise LookalikeError("photo paths go in a JSON body (application/json); a form uploads photos")
            uploads = {}
            for key, value in items:
                if isinstance(value, UploadFile):
                    uploads[key] = await decode(await value.read(max_upload + 1), value.filename or key)
            return values, uploads
        try:
            body = await request.json()
        except ValueError:
            raise LookalikeError("the body is not JSON (or send a multipart upload)") from None
        if not isinstance(body, dict):
            raise LookalikeError("the body must be a JSON object")
        return body, {}

    answered = [0]

    async def health(request: Request):
        return JSONResponse({"indexes": {n: str(h.path) for n, h in held.items()}, "pid": os.getpid(),
                             "answered": answered[0]})  # fmt: skip

    async def query(request: Request):
        values, uploads = await fields(request)
        h = pick(values.get("index"))
        paths = check_paths(values.get("paths"))
        if paths and not allow_paths:
            raise LookalikeError("this server takes uploads only (it listens beyond this machine): send the photo")
        inputs = [*paths, *uploads.values()]
        texts = values.get("texts") or []
        if isinstance(texts, str):
            texts = [texts]
        if not inputs and not texts:
            raise LookalikeError("nothing to ask about: give paths, upload a photo, or texts (a clip index)")
        if len(inputs) + len(texts) > MAX_QUESTIONS:
            raise LookalikeError(f"at most {MAX_QUESTIONS} photos and texts a request")
        face = values.get("face")
        identity = values.get("identity") or None
        kwargs = {
            "k": check_k(values.get("k", 10)),
            "mode": check_mode(values.get("mode", "faces")),
            "face": None if face in (None, "") else check_face(face),
            "include_self": str(values.get("include_self", "")).lower() in ("1", "true", "yes"),
            "identity": None if identity is None else str(identity),
            "fmr": check_fmr(values.get("fmr", DEFAULT_FMR)),
            "all_faces": str(values.get("all_faces", "")).lower() in ("1", "true", "yes"),
        }

        def run():
            with h.lock:
                asked = h.searcher.query_texts([str(t) for t in texts], kwargs["k"], kwargs["mode"]) if texts else []
                asked += h.searcher.query_photos(inputs, **kwargs) if inputs else []
                out = [a.as_json() for a in asked]
            answered[0] += 1
            return out

        out = await run_in_threadpool(run)
        for a in out:
            for m in a.get("results", []):
                m["path"] = shown_path(request, str(m["path"]))
        if uploads and not values.get("paths") and all(a.get("error") for a in out):
            # an upload that gives nothing to answer (no face in it) is the asker's to fix: 422, one line
            return JSONResponse({"error": out[0]["error"]}, status_code=422)
        return JSONResponse(out)

    async def verify(request: Request):
        from lookalike.search.verify import verify as verify_pair

        values, uploads = await fields(request)
        h = pick(values.get("index"))
        if not allow_paths and ("a" in values or "b" in values):
            raise LookalikeError("this server takes uploads only (it listens beyond this machine): send the photos")
        a = uploads.get("a", values.get("a"))
        b = uploads.get("b", values.get("b"))
        if a is None or b is None:
            raise LookalikeError("give two photos: a and b (paths, or uploads)")
        threshold = check_threshold(values.get("threshold"))
        fmr = check_fmr(values.get("fmr", DEFAULT_FMR))

        def run():
            with h.lock:
                return verify_pair(h.searcher.analyzer, a, b, threshold=threshold, fmr=fmr).as_json()

        return JSONResponse(await run_in_threadpool(run))

    async def face(request: Request):
        h = pick(request.query_params.get("index"))
        vid = request.path_params["vector_id"]
        row = h.searcher.face_record(vid)
        if row is None:
            return JSONResponse({"error": f"no face with vector id {vid} in index {h.name!r}"}, status_code=404)
        if "path" in row:
            row["path"] = shown_path(request, str(row["path"]))
        return JSONResponse(row)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if on_stop is not None:
            on_stop()

    from lookalike.serve.pages import page_routes

    routes = [
        *page_routes(pick, decode, run_in_threadpool, token, allow_paths),
        Route("/health", health),
        Route("/query", query, methods=["POST"]),
        Route("/verify", verify, methods=["POST"]),
        Route("/faces/{vector_id:int}", face),
    ]

    async def refused(request: Request, e: Exception):
        """Any request the server cannot answer as asked: a 400 with one line (JSON for the API, text for a page);
        the server stays up."""
        if isinstance(e, LookalikeError):
            why = str(e)
        elif isinstance(e, OSError):  # a full disk, a read-only index folder: the change was not made
            why = f"the server could not write: {e.strerror or e}; nothing was changed"
        else:  # a field of the wrong type or shape: int("ten"), a missing form value
            why = f"bad request: {type(e).__name__}: {' '.join(str(e).split())}"[:300]
        if (
            request.url.path in ("/query", "/verify")
            or request.url.path.startswith("/faces/")
            or "json" in (request.headers.get("accept", ""))
        ):
            return JSONResponse({"error": why}, status_code=400)
        return PlainTextResponse(f"lookalike: error: {why}", status_code=400)

    from starlette.formparsers import MultiPartException

    handlers = {k: refused for k in (LookalikeError, TypeError, ValueError, KeyError, OSError, MultiPartException)}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    limit = MAX_FORM_FILES * (max_upload + 2**16) + 2**20  # two photos and their fields, as multipart spells them
    return FrontDoor(app, LOOPBACK_HOSTS if hosts is None else hosts, max_body=limit)
