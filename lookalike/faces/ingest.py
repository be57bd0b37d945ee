"""Parallel face finding: worker processes read, decode, detect, choose the main face and crop; the caller
embeds the crops (one model, batches across photos, on its torch device) and writes. A head that computes on one
core holding the GIL (dlib: `Head.embeds_in_workers`) embeds in the workers instead, one network in each.

Workers hold a detector only (no head), run one thread each, and hand back crops and geometry, never decoded
photos, so what crosses between processes is small (a 160 px crop is 77 KB). Each worker bounds its own decoded
pixels (`pixels_in_flight / workers`); at most `2 * workers + 1` chunks of files are out at once, so a slow
embedder never lets found faces pile up. Results come back in the order of the files, so ids are the same as
those of the in-process path.

`find_in_files` is what each worker runs on its chunk of files (the in-process path of small runs reads with
`index.build.read_batches` instead: one reader thread decoding ahead of detection).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from lookalike.errors import LookalikeError
from lookalike.faces.analyzer import AnalyzedPhoto, FaceAnalyzer
from lookalike.faces.photos import Photo, PixelBudget, Rejected, Unchanged, drop_pixels, load_photo

#: What one file gives: a reject, an unchanged file, or a photo with its faces (cropped, not embedded) or the
#: reason it has none (`AnalyzedPhoto.error`). An analysed photo's pixels are dropped (`rgb` is empty).
Found = AnalyzedPhoto | Rejected | Unchanged

#: A file to read: its path, whether it is labelled (keeps its best face below the min probability), and the
#: digest already indexed for it (equal bytes give `Unchanged` without a decode).
Task = tuple[str, bool, str | None]


@dataclass(frozen=True)
class FinderSettings:
    """Everything a worker needs to find faces the way the index was built (picklable)."""

    detector: dict  # `describe_detector(...)`: the manifest's detector params
    crop: str
    max_pixels: int
    max_bytes: int
    pixels_in_flight: int  # per finder (each worker has its own)
    draft_side: int | None  # decode a large JPEG reduced to this long side (`load_photo`)
    #: embed in the worker too, with the head this makes (a picklable call, e.g. `partial(create_head, "dlib",
    #: device="cpu")`, for a head whose `embeds_in_workers` is True); None: the caller embeds
    make_head: Callable[[], Any] | None = None


#: Fewer files than this are found in-process: starting workers (a second each) would cost more than it saves.
PARALLEL_FROM_FILES = 200
#: Photos whose median file is at least this large (a JPEG of about 1 MP) get worker processes on 2-3 CPUs.
LARGE_PHOTO_BYTES = 200_000


def default_workers(files: int, embeds_in_workers: bool = False, median_bytes: int | None = None) -> int:
    """Worker processes for `files` files: one per CPU this process may use (its affinity) but one, at most 16,
    from 4 CPUs; on 2-3 CPUs one per CPU for large photos (`median_bytes`, the median file size, from
    `LARGE_PHOTO_BYTES`); else 0 (find faces in this process, one reader thread decoding ahead).

    Measured on 2 cores (benchmarks/ingest.md): for LFW's 150 px photos, where embedding is most of the work, the
    in-process path is the faster (workers 1.05x its time); for 1-12 MP photos, where detection is, two workers
    are (0.93x), as the embedder in this process then overlaps them. A head that embeds in the workers (one core
    each, `Head.embeds_in_workers`) gets one worker per CPU from 2 CPUs: the caller then only writes.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    if files < PARALLEL_FROM_FILES or cpus < 2:
        return 0
    if embeds_in_workers or (cpus < 4 and (median_bytes or 0) >= LARGE_PHOTO_BYTES):
        return min(16, cpus)
    if cpus < 4:
        return 0
    return min(16, cpus - 1)


def find_in_files(
    analyzer: FaceAnalyzer, tasks: list[Task], settings: FinderSettings, budget: PixelBudget
) -> list[Found]:
    """Read, decode, detect, choose and crop the files of `tasks`, in their order; never raises for a bad file.

    Photos are analysed together, as many as the pixel budget holds: when a decode would wait for pixels, the
    photos held so far are analysed first and their pixels given back.
    """
    out: list[Found | None] = [None] * len(tasks)
    held: list[tuple[int, Photo]] = []

    def analyze_held() -> None:
        if not held:
            return
        batch = list(held)
        held.clear()
        analyzed = analyzer.analyze(
            [p for _, p in batch], keep_best=[tasks[i][1] for i, _ in batch], embed=settings.make_head is not None
        )
        for (i, photo), a in zip(batch, analyzed, strict=True):
            drop_pixels(photo, budget)
            out[i] = a

    budget.on_wait = analyze_held
    try:
        for i, (path, _, known) in enumerate(tasks):
            item = load_photo(
                path,
                settings.max_pixels,
                max_bytes=settings.max_bytes,
                budget=budget,
                known_sha256=known,
                draft_side=settings.draft_side,
            )
            if isinstance(item, Photo):
                held.append((i, item))
            else:
                out[i] = item
        analyze_held()
    finally:
        budget.on_wait = None
        for _, photo in held:
            drop_pixels(photo, budget)
    return [x for x in out if x is not None]


# ------------------------------------------------------------------------------------------ worker processes
_worker: tuple[FaceAnalyzer, FinderSettings, PixelBudget] | None = None


def _exit_with_parent(parent: int) -> None:
    """End this worker when the process that started it dies, even by `kill -9` (which runs no clean-up there):
    Linux's parent-death signal where there is one, and on every system a thread that watches the parent's pid.
    Without this a killed `lookalike index --workers N` left N workers (and multiprocessing's resource tracker,
    which lives while they hold its pipe) running for minutes, ~300 MB."""
    import ctypes
    import signal
    import sys
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)  # the parent is gone (this process was re-parented): nobody will read what it finds

    if os.getppid() != parent:  # it died before the signal was set
        os._exit(1)
    threading.Thread(target=watch, name="lookalike-parent-watch", daemon=True).start()


def _start_worker(settings: FinderSettings, parent: int | None = None) -> None:
    """Runs once in each worker: one thread for the math (the processes are the parallelism), one detector; the
    worker ends with `parent`, the process that started the pool."""
    global _worker
    import sys

    if parent is not None:
        _exit_with_parent(parent)

    import cv2

    cv2.setNumThreads(1)
    from lookalike.faces.detect import detector_from_params

    detector = detector_from_params(settings.detector, device="cpu")
    # torch only where the detector brought it (MTCNN): importing it costs a worker ~490 MB resident, which
    # YuNet's workers do not need (benchmarks/ingest-gpu.md: 15 workers held 9 GB with it)
    head = settings.make_head() if settings.make_head is not None else None
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    analyzer = FaceAnalyzer(detector, head=head, crop=settings.crop)
    _worker = (analyzer, settings, PixelBudget(settings.pixels_in_flight))


def _work(tasks: list[Task]) -> list[Found]:
    assert _worker is not None, "the worker was not started"
    analyzer, settings, budget = _worker
    return find_in_files(analyzer, tasks, settings, budget)


class ParallelFinder:
    """A pool of worker processes finding faces; `find` yields results chunk by chunk, in the order of the tasks.

    Workers start with `spawn` (a fresh interpreter: no torch or OpenMP state copied from the parent) and load
    their detector once. Use as a context manager; closing it stops the workers.
    """

    def __init__(self, settings: FinderSettings, workers: int, chunk: int = 8) -> None:
        self.workers = max(1, int(workers))
        self.chunk = max(1, int(chunk))
        per_worker = dataclasses.replace(settings, pixels_in_flight=settings.pixels_in_flight // self.workers)
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(per_worker, os.getpid()),
        )

    def find(self, tasks: list[Task]) -> Iterator[list[Found]]:
        chunks = (tasks[i : i + self.chunk] for i in range(0, len(tasks), self.chunk))
        window: deque[Future] = deque()
        try:
            for c in chunks:
                window.append(self._pool.submit(_work, c))
                if len(window) > 2 * self.workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        except BrokenProcessPool:
            raise LookalikeError(
                "a face-finding worker process died (out of memory, or killed); what was committed is kept: run "
                "again to go on, with --workers 0 to find faces in this process (a script that calls run_index "
                "with workers must guard its top level with `if __name__ == '__main__':`)"
            ) from None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParallelFinder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
