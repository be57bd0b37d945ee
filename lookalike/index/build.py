"""Indexing as plain stages over batches: read -> detect/align -> embed -> write.

`process_files` (read, detect, crop, embed) is a pure function of a list of paths and the models, so the
Ray Data job in `lookalike/index/ray_job.py` maps the very same function over partitions; only `run_index` (the single
writer: ids, parts, finalize) runs on one machine.
"""

from __future__ import annotations

import contextlib
import os
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from lookalike.faces.analyzer import AnalyzedPhoto, FaceAnalyzer
from lookalike.faces.detect import Detector
from lookalike.faces.ingest import FinderSettings, Found, ParallelFinder, default_workers
from lookalike.faces.photos import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_PIXELS_IN_FLIGHT,
    FileStat,
    Photo,
    PixelBudget,
    Rejected,
    SourceScan,
    Unchanged,
    drop_pixels,
    identity_from_folder,
    load_photo,
    scan_source,
    stat_file,
)
from lookalike.heads import Head, create_head
from lookalike.index.store import REJECTS_SCHEMA, FaceStore, faces_schema, now_utc
from lookalike.index.writer import IndexWriter
from lookalike.paths import fs_path


@dataclass
class IndexOptions:
    """Knobs of an indexing run (the detector's own settings come from the detector)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    pixels_in_flight: int = DEFAULT_PIXELS_IN_FLIGHT
    batch_files: int = 32
    commit_every: int = 256
    index_factory: str = "auto"
    labels: dict[str, str] | None = None
    prune: bool = False
    workers: int | None = None  # processes that find faces; None: `default_workers`

    def params(self, detector_params: dict, crop: str, head_preprocess: str = "1") -> dict:
        """The manifest's `params`: detector settings, crop, the head's preprocessing version, limits."""
        return {
            **detector_params,
            "crop": crop,
            "head_preprocess": str(head_preprocess),
            "max_pixels": self.max_pixels,
            "index_factory": self.index_factory,
            "main_face": "largest clipped box, discounted by distance from centre; a labelled photo keeps its best "
            "face down to the detector's floor",
        }


class Progress(Protocol):
    """Where a run reports how far it is (the CLI draws a bar from it)."""

    def start(self, total_files: int) -> None: ...

    def advance(self, files: int, faces: int) -> None: ...


@dataclass
class IndexReport:
    """What a run did, for the terminal and `--json`."""

    index: str
    head: str
    files_seen: int = 0
    files_processed: int = 0
    files_unchanged: int = 0
    files_skipped: int = 0  # not photos (by ending and first bytes), hidden files
    files_touched: int = 0  # mtime changed, same bytes: kept without a new embedding
    faces_added: int = 0
    rejects_added: int = 0
    pruned_files: int = 0
    workers: int = 0
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------------------------- stages
Loaded = Photo | Rejected | Unchanged


def read_batches(
    paths: list[str],
    batch_files: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    budget: PixelBudget | None = None,
    known_sha256: dict[str, str | None] | None = None,
    draft_side: int | None = None,
) -> Iterator[list[Loaded]]:
    """Batches of loaded files, read by one background thread one batch ahead of the caller.

    Memory is bounded by decoded pixels, not photos: each decode draws its pixels from `budget`, and the
    caller gives a batch's pixels back (`release_batch`) when it is done with it. When a decode would have to
    wait for pixels, the reader hands over the batch it holds first, so the caller can free some.
    """
    budget = budget or PixelBudget(DEFAULT_PIXELS_IN_FLIGHT)
    known = known_sha256 or {}
    out: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()
    current: list[Loaded] = []

    def hand_over() -> None:
        nonlocal current
        if current:
            batch, current = current, []
            out.put(batch)

    def produce() -> None:
        try:
            budget.on_wait = hand_over
            for p in paths:
                if stop.is_set():
                    return
                # loaded first, appended after: the load may hand `current` over while it waits for pixels
                item = load_photo(
                    p, max_pixels, max_bytes=max_bytes, budget=budget, known_sha256=known.get(p), draft_side=draft_side
                )
                current.append(item)
                if len(current) >= batch_files:
                    hand_over()
            hand_over()
            out.put(done)
        except BaseException as e:  # surfaced in the caller's thread
            out.put(e)

    worker = threading.Thread(target=produce, name="lookalike-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            budget.release(budget.limit)  # wake a reader waiting for pixels
            try:
                out.get(timeout=0.05)  # make room for a reader waiting to hand over
            except queue.Empty:
                pass
        budget.on_wait = None


def release_batch(batch: list[Loaded], budget: PixelBudget) -> None:
    """Give a batch's decoded pixels back to the budget (and drop them)."""
    for item in batch:
        if isinstance(item, Photo):
            drop_pixels(item, budget)


def face_rows(analyzed: list[AnalyzedPhoto], head: str, dim: int, identity_of: Callable[[str], str | None]) -> pa.Table:
    """Face records of analysed photos (vector ids still null: the writer assigns them)."""
    rows: dict[str, list] = {k: [] for k in faces_schema(dim).names}
    now = now_utc()
    for a in analyzed:
        photo = a.photo
        ident = identity_of(photo.stat.path)
        w, h = photo.size
        for f in a.faces:
            rows["vector_id"].append(None)
            rows["face_id"].append(f"{photo.stat.path}#{f.index}")
            rows["path"].append(photo.stat.path)
            rows["sha256"].append(photo.sha256)
            rows["file_size"].append(photo.stat.size)
            rows["mtime_ns"].append(photo.stat.mtime_ns)
            rows["face_index"].append(f.index)
            rows["is_main"].append(f.index == 0)
            rows["box"].append([float(v) for v in f.box])
            rows["landmarks"].append([float(v) for v in f.landmarks.reshape(-1)])
            rows["prob"].append(f.prob)
            rows["identity"].append(ident if f.index == 0 else None)  # only the main face takes the label
            rows["head"].append(head)
            rows["width"].append(w)
            rows["height"].append(h)
            rows["added_at"].append(now)
            rows["embedding"].append(f.embedding)
    return pa.Table.from_pydict(rows, schema=faces_schema(dim))


def reject_rows(rejects: list[Rejected]) -> pa.Table:
    now = now_utc()
    return pa.Table.from_pydict(
        {
            "path": [r.stat.path for r in rejects],
            "sha256": [r.sha256 for r in rejects],
            "file_size": [r.stat.size for r in rejects],
            "mtime_ns": [r.stat.mtime_ns for r in rejects],
            "reason": [r.reason for r in rejects],
            "added_at": [now] * len(rejects),
        },
        schema=REJECTS_SCHEMA,
    )


def tables_of(
    found: list[Found], analyzer: FaceAnalyzer, identity_of: Callable[[str], str | None]
) -> tuple[pa.Table, pa.Table]:
    """Embed the faces of analysed photos in one batch across photos and make the rows: `(faces, rejects)`.

    A photo with no face to use is a reject; `Unchanged` items are left to the caller.
    """
    head = analyzer.head
    assert head is not None
    analyzed = [x for x in found if isinstance(x, AnalyzedPhoto)]
    rejects = [x for x in found if isinstance(x, Rejected)]
    for a in analyzed:
        if a.error:
            why = a.error
            if why == "no face found":
                why = f"no face found (probability >= {analyzer.detector.min_prob})"
            rejects.append(Rejected(a.photo.stat, a.photo.sha256, why))
    done = [a for a in analyzed if not a.error]
    analyzer.embed([f for a in done for f in a.faces if f.embedding is None])  # workers may have embedded
    return face_rows(done, head.name, head.dim, identity_of), reject_rows(rejects)


def process_loaded(
    loaded: list[Loaded],
    detector: Detector,
    head: Head,
    identity_of: Callable[[str], str | None],
) -> tuple[pa.Table, pa.Table]:
    """Detect, crop and embed decoded photos (`FaceAnalyzer`): `(faces table, rejects table)`; a photo with
    no face to use is a reject. A labelled photo keeps its best face below the min probability.

    `Unchanged` items are left to the caller (their rows are already in the index).
    """
    analyzer = FaceAnalyzer(detector, head)
    photos = [x for x in loaded if isinstance(x, Photo)]
    labelled = [identity_of(p.stat.path) is not None for p in photos]
    analyzed = analyzer.analyze(photos, keep_best=labelled, embed=False) if photos else []
    return tables_of([*analyzed, *(x for x in loaded if isinstance(x, Rejected))], analyzer, identity_of)


def process_files(
    paths: list[str],
    detector: Detector,
    head: Head,
    identity_of: Callable[[str], str | None],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pixels_in_flight: int = DEFAULT_PIXELS_IN_FLIGHT,
) -> tuple[pa.Table, pa.Table]:
    """One batch end to end: `(faces table, rejects table)`. Photos with no face become rejects.

    Decoded pixels stay under `pixels_in_flight`: a batch of large photos is taken in as many pieces as needed.
    """
    budget = PixelBudget(pixels_in_flight)
    faces, rejects = [], []
    with contextlib.closing(read_batches(paths, max(1, len(paths)), max_pixels, budget=budget)) as batches:
        for loaded in batches:
            f, r = process_loaded(loaded, detector, head, identity_of)
            release_batch(loaded, budget)
            faces.append(f)
            rejects.append(r)
    if not faces:
        return faces_schema(head.dim).empty_table(), REJECTS_SCHEMA.empty_table()
    return pa.concat_tables(faces), pa.concat_tables(rejects)


# ---------------------------------------------------------------------------------------------- runner
@dataclass
class Plan:
    """What a run must do: files to read, rejects known by name, what vanished, what is unchanged."""

    scan: SourceScan
    todo: list[str]
    unsupported: list[Rejected]
    vanished: list[str]
    unchanged: int
    known_sha256: dict[str, str | None]
    todo_median_bytes: int = 0  # the median file size of `todo` (`default_workers` reads it)


def plan(source: str | Path, store: FaceStore) -> Plan:
    """Compare the source with the index: only new or changed files (size or mtime) are read again."""
    scan = scan_source(source)
    known = store.known_files()
    todo: list[str] = []
    todo_bytes: list[int] = []
    unsupported: list[Rejected] = []
    unchanged = 0
    reasons = dict(scan.unsupported)
    for p in [*scan.photos, *reasons]:
        try:
            st: FileStat | None = stat_file(p)
        except OSError:
            st = None
        k = known.get(p)
        if k is not None and st is not None and (st.size, st.mtime_ns) == (k[0], k[1]):
            unchanged += 1
        elif p in reasons:
            unsupported.append(Rejected(st or FileStat(p, -1, -1), None, reasons[p]))
        else:
            todo.append(p)
            todo_bytes.append(st.size if st is not None else 0)
    median_bytes = int(statistics.median(todo_bytes)) if todo_bytes else 0
    todo = list(dict.fromkeys(todo))  # a list file may name a photo twice
    listed = set(scan.photos) | set(reasons)
    if scan.kind == "folder" and scan.root is not None:
        from lookalike.paths import to_text

        prefix = to_text(scan.root).rstrip(os.sep) + os.sep
        vanished = [p for p in known if p.startswith(prefix) and p not in listed]
    else:
        vanished = [p for p in known if p not in listed and not os.path.lexists(fs_path(p))]
    known_sha = {p: known[p][2] for p in todo if p in known}
    return Plan(scan, todo, unsupported, vanished, unchanged, known_sha, median_bytes)


def _found_batches(
    p: Plan, analyzer: FaceAnalyzer, identity_of: Callable[[str], str | None], opts: IndexOptions, workers: int
) -> Iterator[list[Found]]:
    """The files to read, found (decoded, detected, chosen, cropped; not embedded) about `batch_files` at a time.

    workers > 0: worker processes find the faces (`ParallelFinder`); 0: this process does, with one reader
    thread decoding ahead (small runs, where starting processes costs more than it saves).
    """
    detector = analyzer.detector
    if workers > 0:
        head = analyzer.head
        in_workers = head is not None and head.embeds_in_workers
        make_head = partial(create_head, head.name, device="cpu") if in_workers else None
        settings = FinderSettings(
            detector.params, analyzer.crop or "", opts.max_pixels, opts.max_bytes, opts.pixels_in_flight,
            detector.max_side, make_head,
        )  # fmt: skip
        tasks = [(path, identity_of(path) is not None, p.known_sha256.get(path)) for path in p.todo]
        with ParallelFinder(settings, workers) as finder:
            group: list[Found] = []
            for found in finder.find(tasks):
                group += found
                if len(group) >= opts.batch_files:
                    yield group
                    group = []
            if group:
                yield group
        return
    budget = PixelBudget(opts.pixels_in_flight)
    batches = read_batches(
        p.todo, opts.batch_files, opts.max_pixels, opts.max_bytes, budget, p.known_sha256, detector.max_side
    )
    with contextlib.closing(batches):  # a failed run stops its reader thread too
        for loaded in batches:
            photos = [x for x in loaded if isinstance(x, Photo)]
            labelled = [identity_of(x.stat.path) is not None for x in photos]
            analyzed = analyzer.analyze(photos, keep_best=labelled, embed=False) if photos else []
            release_batch(loaded, budget)
            yield [*analyzed, *(x for x in loaded if not isinstance(x, Photo))]


def _label_warnings(scan: SourceScan, labels: dict[str, str] | None) -> list[str]:
    out = []
    if scan.kind == "list" and labels is None:
        out.append(
            "photos from a list file are indexed without identity labels (folder names label only a folder "
            "you index): give --labels CSV, or a list file whose first line is `path,identity`"
        )
    if labels:
        listed = set(scan.photos)
        orphans = [p for p in labels if p not in listed]
        if orphans:
            shown = ", ".join(orphans[:5]) + (f" and {len(orphans) - 5} more" if len(orphans) > 5 else "")
            out.append(f"{len(orphans)} of {len(labels)} labels match no photo of the source: {shown}")
    return out


def run_index(
    source: str | Path,
    out: str | Path,
    head: Head,
    detector: Detector,
    options: IndexOptions | None = None,
    progress: Progress | None = None,
) -> IndexReport:
    """Index a folder, list file or photo into the index folder `out`; only new or changed files are embedded."""
    opts = options or IndexOptions()
    t0 = time.perf_counter()
    report = IndexReport(index=str(out), head=head.name)
    params = opts.params(detector.params, head.crop, head.preprocess_version)
    with FaceStore.writer(out, head.name, head.dim, head.weights_sha256, params) as store:
        p = plan(source, store)
        labels = opts.labels if opts.labels is not None else p.scan.labels
        report.warnings = _label_warnings(p.scan, labels)

        def identity_of(path: str) -> str | None:
            if labels is not None:
                return labels.get(path)
            return identity_from_folder(path, p.scan.root) if p.scan.kind == "folder" else None

        report.files_seen = len(p.todo) + len(p.unsupported) + p.unchanged
        report.files_unchanged = p.unchanged
        report.files_skipped = p.scan.skipped
        if progress:
            progress.start(len(p.todo))
        writer = IndexWriter(store, head.dim, opts.commit_every)
        writer.add(None, reject_rows(p.unsupported) if p.unsupported else None)
        analyzer = FaceAnalyzer(detector, head)
        workers = opts.workers
        if workers is None:
            workers = default_workers(len(p.todo), head.embeds_in_workers, p.todo_median_bytes)
        report.workers = workers
        for found in _found_batches(p, analyzer, identity_of, opts, workers):
            writer.touched([x for x in found if isinstance(x, Unchanged)])
            faces_t, rejects_t = tables_of(found, analyzer, identity_of)
            writer.add(faces_t, rejects_t, files=len(found))
            report.files_processed += len(found)
            if progress:
                progress.advance(len(found), faces_t.num_rows)
        report.files_touched = writer.touched_files
        drop = set(p.vanished) if opts.prune else set()
        report.pruned_files = len(drop)
        report.counts = writer.finish(drop)
        report.faces_added = writer.faces_added
        report.rejects_added = writer.rejects_added
    report.seconds = round(time.perf_counter() - t0, 3)
    return report
