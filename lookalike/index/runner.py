"""The one indexing runner: plan -> find faces (a distributor runs `lookalike.ingest.find.find_faces`) -> embed ->
write. `run_index` is the single writer (ids, parts, finalize) whichever distributor found the faces: this process,
worker processes, or Ray actors on a cluster (`pipelines/ray_index.py`); the CLI, the library and the pipeline all
call it, so an index is the same byte for byte whichever way it was built.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from lookalike.config import (
    DEFAULT_BATCH_FILES,
    DEFAULT_COMMIT_EVERY,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_PIXELS_IN_FLIGHT,
)
from lookalike.faces.analyzer import AnalyzedPhoto, FaceAnalyzer, FaceFailure
from lookalike.faces.detect import Detector
from lookalike.faces.labels import identity_from_folder
from lookalike.faces.photos import FileStat, Rejected, Unchanged, stat_file
from lookalike.faces.scan import SourceScan, scan_source
from lookalike.heads import Head, create_head
from lookalike.index.store import REJECTS_SCHEMA, FaceStore, faces_schema, now_utc
from lookalike.index.writer import IndexWriter
from lookalike.ingest.distribute import Distributor, choose
from lookalike.ingest.find import FindSettings, Found, Task, find_faces
from lookalike.paths import fs_path


@dataclass
class IndexOptions:
    """Knobs of an indexing run (the detector's own settings come from the detector)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    pixels_in_flight: int = DEFAULT_PIXELS_IN_FLIGHT
    batch_files: int = DEFAULT_BATCH_FILES
    commit_every: int = DEFAULT_COMMIT_EVERY
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

    def find_settings(
        self, detector: Detector, head: Head, embed: bool = False, device: str | None = "cpu"
    ) -> FindSettings:
        """What each finder is given: the detector's settings, the head's crop, the limits; `embed`: the finder
        embeds too, with a head of the same name made where it runs, on `device`."""
        make_head = partial(create_head, head.name, device=device) if embed else None
        return FindSettings(
            detector.params, head.crop, self.max_pixels, self.max_bytes, self.pixels_in_flight, detector.max_side,
            self.batch_files, make_head,
        )  # fmt: skip


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
    distributor: str = "inline"
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------------------------- rows
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
            why = str(a.error)
            if a.error.kind == FaceFailure.NO_FACE:
                why = f"no face found (probability >= {analyzer.detector.min_prob})"
            rejects.append(Rejected(a.photo.stat, a.photo.sha256, why))
    done = [a for a in analyzed if not a.error]
    analyzer.embed([f for a in done for f in a.faces if f.embedding is None])  # workers may have embedded
    return face_rows(done, head.name, head.dim, identity_of), reject_rows(rejects)


def process_files(
    paths: list[str],
    detector: Detector,
    head: Head,
    identity_of: Callable[[str], str | None],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pixels_in_flight: int = DEFAULT_PIXELS_IN_FLIGHT,
) -> tuple[pa.Table, pa.Table]:
    """Files end to end in this process, without an index: `(faces table, rejects table)` (a head's plumbing tests
    use it). Photos with no face become rejects; decoded pixels stay under `pixels_in_flight`."""
    analyzer = FaceAnalyzer(detector, head)
    settings = FindSettings(detector.params, head.crop, max_pixels, pixels_in_flight=pixels_in_flight,
                            batch_files=max(1, len(paths)))  # fmt: skip
    tasks = [Task(p, identity_of(p) is not None) for p in paths]
    tables = [tables_of(found, analyzer, identity_of) for found in find_faces(tasks, settings, analyzer)]
    if not tables:
        return faces_schema(head.dim).empty_table(), REJECTS_SCHEMA.empty_table()
    return pa.concat_tables([f for f, _ in tables]), pa.concat_tables([r for _, r in tables])


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


def labeller(scan: SourceScan, labels: dict[str, str] | None) -> Callable[[str], str | None]:
    """A path's identity label: from `labels` when given (or the list file's), else its folder's name under a
    folder source, else none."""

    def identity_of(path: str) -> str | None:
        if labels is not None:
            return labels.get(path)
        return identity_from_folder(path, scan.root) if scan.kind == "folder" else None

    return identity_of


def run_index(
    source: str | Path,
    out: str | Path,
    head: Head,
    detector: Detector,
    options: IndexOptions | None = None,
    progress: Progress | None = None,
    distributor: Distributor | None = None,
) -> IndexReport:
    """Index a folder, list file or photo into the index folder `out`; only new or changed files are embedded.

    distributor: who finds the faces (`lookalike.ingest.distribute`); default `Inline` or a `ProcessPool` by
    `options.workers` (None: `default_workers`). A distributor that embeds (Ray actors, a head that embeds in
    workers) hands back vectors; the rest are embedded here, in batches across photos.
    """
    opts = options or IndexOptions()
    t0 = time.perf_counter()
    report = IndexReport(index=str(out), head=head.name)
    params = opts.params(detector.params, head.crop, head.preprocess_version)
    with FaceStore.writer(out, head.name, head.dim, head.weights_sha256, params) as store:
        p = plan(source, store)
        labels = opts.labels if opts.labels is not None else p.scan.labels
        report.warnings = _label_warnings(p.scan, labels)
        identity_of = labeller(p.scan, labels)
        report.files_seen = len(p.todo) + len(p.unsupported) + p.unchanged
        report.files_unchanged = p.unchanged
        report.files_skipped = p.scan.skipped
        if progress:
            progress.start(len(p.todo))
        writer = IndexWriter(store, head.dim, opts.commit_every)
        writer.add(None, reject_rows(p.unsupported) if p.unsupported else None)
        analyzer = FaceAnalyzer(detector, head)
        own = distributor is None
        if distributor is None:
            distributor = choose(opts.workers, len(p.todo), head.embeds_in_workers, p.todo_median_bytes)
        # Ray actors embed where they run; worker processes embed for a head that holds the GIL on one core (dlib)
        embeds_there = distributor.embeds or (distributor.workers > 0 and head.embeds_in_workers)
        settings = opts.find_settings(detector, head, embeds_there, distributor.head_device)
        report.workers = distributor.workers
        report.distributor = distributor.name
        tasks = [Task(path, identity_of(path) is not None, p.known_sha256.get(path)) for path in p.todo]
        try:
            group: list[Found] = []
            for found in distributor.find(tasks, settings, analyzer):
                group += found
                if len(group) < opts.batch_files:
                    continue
                _write(group, analyzer, identity_of, writer, report, progress)
                group = []
            if group:
                _write(group, analyzer, identity_of, writer, report, progress)
        finally:
            if own:
                distributor.close()
        report.files_touched = writer.touched_files
        drop = set(p.vanished) if opts.prune else set()
        report.pruned_files = len(drop)
        report.counts = writer.finish(drop)
        report.faces_added = writer.faces_added
        report.rejects_added = writer.rejects_added
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _write(
    found: list[Found],
    analyzer: FaceAnalyzer,
    identity_of: Callable[[str], str | None],
    writer: IndexWriter,
    report: IndexReport,
    progress: Progress | None,
) -> None:
    """Embed what the finders did not, and hand one group's rows to the writer."""
    writer.touched([x for x in found if isinstance(x, Unchanged)])
    faces_t, rejects_t = tables_of(found, analyzer, identity_of)
    writer.add(faces_t, rejects_t, files=len(found))
    report.files_processed += len(found)
    if progress:
        progress.advance(len(found), faces_t.num_rows)
