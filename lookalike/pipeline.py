"""Indexing as plain stages over batches: read -> detect/align -> embed -> write.

`process_files` (read, detect, crop, embed) is a pure function of a list of paths and the models, so the
Ray Data job in `pipelines/` maps the very same function over partitions; only `run_index` (the single
writer: ids, parts, finalize) runs on one machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

from .align import crop_face
from .detect import DetectedFace, FaceDetector, main_face_order
from .heads import Head
from .photos import (
    DEFAULT_MAX_PIXELS,
    Photo,
    Rejected,
    chunked,
    identity_from_folder,
    iter_photo_files,
    load_photo,
    stat_file,
)
from .store import REJECTS_SCHEMA, FaceStore, faces_schema, now_utc


@dataclass
class IndexOptions:
    """Knobs of an indexing run (all recorded in the manifest's `params`)."""

    min_prob: float = 0.9
    min_face_size: int = 20
    max_side: int = 1600
    max_pixels: int = DEFAULT_MAX_PIXELS
    batch_files: int = 32
    commit_every: int = 256
    index_factory: str = "Flat"
    labels: dict[str, str] | None = None
    prune: bool = False

    def params(self, detector_params: dict, crop: str) -> dict:
        """The manifest's `params`: detector settings, crop, limits."""
        return {
            **detector_params,
            "crop": crop,
            "max_pixels": self.max_pixels,
            "index_factory": self.index_factory,
            "main_face": "largest, discounted by distance from centre",
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
    faces_added: int = 0
    rejects_added: int = 0
    pruned_files: int = 0
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------------------------- stages
def read_stage(paths: list[str], max_pixels: int, pool: ThreadPoolExecutor | None = None) -> list[Photo | Rejected]:
    """Read, hash and decode each file (threads overlap I/O and decode)."""
    if pool is None:
        return [load_photo(p, max_pixels) for p in paths]
    return list(pool.map(lambda p: load_photo(p, max_pixels), paths))


def detect_stage(detector: FaceDetector, photos: list[Photo]) -> list[list[DetectedFace]]:
    """Faces of each photo, main face first."""
    found = detector.detect([p.rgb for p in photos])
    out = []
    for photo, faces in zip(photos, found, strict=False):
        h, w = photo.rgb.shape[:2]
        out.append([faces[i] for i in main_face_order(faces, w, h)])
    return out


def crop_stage(photos: list[Photo], faces: list[list[DetectedFace]], crop: str) -> np.ndarray:
    """The head's crop of every face, photo by photo: `(F, S, S, 3) uint8`."""
    crops = [crop_face(p.rgb, f.geometry, crop) for p, fs in zip(photos, faces, strict=False) for f in fs]
    return np.stack(crops) if crops else np.zeros((0, 1, 1, 3), np.uint8)


def face_rows(
    photos: list[Photo],
    faces: list[list[DetectedFace]],
    vectors: np.ndarray,
    head: str,
    identity_of: Callable[[str], str | None],
) -> pa.Table:
    """Face records (vector ids still null: the writer assigns them)."""
    rows: dict[str, list] = {k: [] for k in faces_schema(vectors.shape[1] if vectors.ndim == 2 else 1).names}
    now = now_utc()
    for photo, fs in zip(photos, faces, strict=False):
        ident = identity_of(photo.stat.path)
        h, w = photo.rgb.shape[:2]
        for i, f in enumerate(fs):
            rows["vector_id"].append(None)
            rows["face_id"].append(f"{photo.stat.path}#{i}")
            rows["path"].append(photo.stat.path)
            rows["sha256"].append(photo.sha256)
            rows["file_size"].append(photo.stat.size)
            rows["mtime_ns"].append(photo.stat.mtime_ns)
            rows["face_index"].append(i)
            rows["is_main"].append(i == 0)
            rows["box"].append([float(v) for v in f.box])
            rows["landmarks"].append([float(v) for v in f.landmarks.reshape(-1)])
            rows["prob"].append(f.prob)
            rows["identity"].append(ident if i == 0 else None)  # only the main face takes the label
            rows["head"].append(head)
            rows["width"].append(w)
            rows["height"].append(h)
            rows["added_at"].append(now)
    dim = vectors.shape[1]
    rows["embedding"] = list(vectors) if len(vectors) else []
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


def process_loaded(
    loaded: list[Photo | Rejected],
    detector: FaceDetector,
    head: Head,
    identity_of: Callable[[str], str | None],
) -> tuple[pa.Table, pa.Table]:
    """Detect, crop and embed decoded photos: `(faces table, rejects table)`; no face -> a reject."""
    photos = [x for x in loaded if isinstance(x, Photo)]
    rejects = [x for x in loaded if isinstance(x, Rejected)]
    faces = detect_stage(detector, photos) if photos else []
    for photo, fs in zip(photos, faces, strict=False):
        if not fs:
            rejects.append(Rejected(photo.stat, photo.sha256, f"no face found (probability >= {detector.min_prob})"))
    keep = [i for i, fs in enumerate(faces) if fs]
    photos, faces = [photos[i] for i in keep], [faces[i] for i in keep]
    vectors = head.embed(crop_stage(photos, faces, head.crop))
    return face_rows(photos, faces, vectors, head.name, identity_of), reject_rows(rejects)


def process_files(
    paths: list[str],
    detector: FaceDetector,
    head: Head,
    identity_of: Callable[[str], str | None],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pool: ThreadPoolExecutor | None = None,
) -> tuple[pa.Table, pa.Table]:
    """One batch end to end: `(faces table, rejects table)`. Photos with no face become rejects."""
    return process_loaded(read_stage(paths, max_pixels, pool), detector, head, identity_of)


# ---------------------------------------------------------------------------------------------- runner
def plan(source: str | Path, store: FaceStore) -> tuple[list[str], list[str], int]:
    """(files to process, indexed files that vanished from the source, files unchanged since indexed)."""
    listed = [os.path.abspath(p) for p in iter_photo_files(source)]
    known = store.known_files()
    todo, unchanged = [], 0
    for p in listed:
        k = known.get(p)
        if k is not None:
            try:
                st = stat_file(p)
            except OSError:
                st = None
            if st is not None and (st.size, st.mtime_ns) == (k[0], k[1]):
                unchanged += 1
                continue
        todo.append(p)
    src = Path(source)
    if src.is_dir():
        prefix = os.path.abspath(src) + os.sep
        listed_set = set(listed)
        vanished = [p for p in known if p.startswith(prefix) and p not in listed_set]
    else:
        vanished = [p for p in known if not os.path.exists(p)]
    return todo, vanished, unchanged


def run_index(
    source: str | Path,
    out: str | Path,
    head: Head,
    detector: FaceDetector,
    options: IndexOptions | None = None,
    progress: Progress | None = None,
) -> IndexReport:
    """Index a folder (or list file) into the index folder `out`; only new or changed files are embedded."""
    opts = options or IndexOptions()
    t0 = time.perf_counter()
    root = Path(source) if Path(source).is_dir() else None

    def identity_of(path: str) -> str | None:
        if opts.labels is not None:
            return opts.labels.get(path)
        return identity_from_folder(path, root)

    report = IndexReport(index=str(out), head=head.name)
    params = opts.params(detector.params, head.crop)
    with FaceStore.writer(out, head.name, head.dim, head.weights_sha256, params) as store:
        todo, vanished, unchanged = plan(source, store)
        report.files_seen = len(todo) + unchanged
        report.files_unchanged = unchanged
        if progress:
            progress.start(len(todo))
        pending_faces: list[pa.Table] = []
        pending_rejects: list[pa.Table] = []
        pending_files = 0

        def commit() -> None:
            nonlocal pending_files
            if not pending_faces and not pending_rejects:
                return
            faces = pa.concat_tables(pending_faces) if pending_faces else faces_schema(head.dim).empty_table()
            rejects = pa.concat_tables(pending_rejects) if pending_rejects else REJECTS_SCHEMA.empty_table()
            ids = store.reserve_ids(faces.num_rows)
            faces = faces.set_column(0, "vector_id", pa.array(ids, pa.int64()))
            store.commit_part(faces, rejects)
            pending_faces.clear()
            pending_rejects.clear()
            pending_files = 0

        batches = list(chunked(todo, opts.batch_files))
        with ThreadPoolExecutor(max_workers=2) as pool:
            # read the next batch while this one is detected and embedded
            nxt = pool.submit(read_stage, batches[0], opts.max_pixels) if batches else None
            for bi, batch in enumerate(batches):
                loaded = nxt.result()
                nxt = pool.submit(read_stage, batches[bi + 1], opts.max_pixels) if bi + 1 < len(batches) else None
                faces_t, rejects_t = process_loaded(loaded, detector, head, identity_of)
                pending_faces.append(faces_t)
                pending_rejects.append(rejects_t)
                pending_files += len(batch)
                report.files_processed += len(batch)
                report.faces_added += faces_t.num_rows
                report.rejects_added += rejects_t.num_rows
                if pending_files >= opts.commit_every:
                    commit()
                if progress:
                    progress.advance(len(batch), faces_t.num_rows)
        commit()
        drop = set(vanished) if opts.prune else set()
        report.pruned_files = len(drop)
        report.counts = store.finalize(drop)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report
