"""Distributors: who runs `find_faces` over an indexing run's files. The runner (`lookalike.index.runner`) is the
same whichever is used (the single writer: ids, parts, finalize) and so is every face found, byte for byte; only
where the finding happens differs, as with clip-retrieval's sequential/pyspark/slurm distributors:

- `Inline`: this process, one reader thread decoding ahead of detection (small runs, LFW-size photos);
- `ProcessPool`: worker processes on this machine (`--workers N`);
- `RayData`: Ray actors on a cluster (`pipelines/ray_index.py`), which also embed, one head per actor.

A distributor has a `name`, `workers`, `embeds`, `find(tasks, settings, analyzer)` yielding groups of found files in
the tasks' order, and `close()`.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from lookalike.errors import LookalikeError
from lookalike.faces.analyzer import AnalyzedPhoto, FaceAnalyzer
from lookalike.faces.photos import PixelBudget
from lookalike.ingest.find import FindSettings, Found, Task, find_faces


class Distributor(Protocol):
    """Runs `find_faces` over tasks somewhere; yields groups of found files in the tasks' order."""

    name: str
    workers: int  # processes or actors finding faces besides this process (0: this one alone)
    embeds: bool  # the finders always embed (where they run); else only for a head that `embeds_in_workers`
    head_device: str | None  # the torch device of a head made where the finders run (None: cuda when present)

    def find(self, tasks: Sequence[Task], settings: FindSettings, analyzer: FaceAnalyzer) -> Iterator[list[Found]]: ...

    def close(self) -> None: ...


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


class Inline:
    """This process finds the faces with `analyzer`, one reader thread decoding ahead."""

    name = "inline"
    workers = 0
    embeds = False
    head_device = "cpu"

    def find(self, tasks: Sequence[Task], settings: FindSettings, analyzer: FaceAnalyzer) -> Iterator[list[Found]]:
        yield from find_faces(tasks, settings, analyzer, PixelBudget(settings.pixels_in_flight), read_ahead=True)

    def close(self) -> None:
        pass


def choose(workers: int | None, files: int, embeds_in_workers: bool, median_bytes: int | None) -> Distributor:
    """`Inline` or a `ProcessPool`: `workers` processes, or `default_workers` for None."""
    n = default_workers(files, embeds_in_workers, median_bytes) if workers is None else int(workers)
    return ProcessPool(n) if n > 0 else Inline()


# ------------------------------------------------------------------------------------------ worker processes
_worker: tuple[FaceAnalyzer, FindSettings, PixelBudget] | None = None


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


def _start_worker(settings: FindSettings, parent: int | None = None) -> None:
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
    return [x for group in find_faces(tasks, settings, analyzer, budget) for x in group]


class ProcessPool:
    """Worker processes find the faces; `find` yields results chunk by chunk, in the order of the tasks.

    Workers start with `spawn` (a fresh interpreter: no torch or OpenMP state copied from the parent) and load
    their detector once, at the first `find`; each bounds its own pixels (`pixels_in_flight / workers`); at most
    `2 * workers + 1` chunks of files are out at once, so a slow embedder never lets found faces pile up.
    """

    name = "process-pool"
    embeds = False
    head_device = "cpu"

    def __init__(self, workers: int, chunk: int = 8) -> None:
        self.workers = max(1, int(workers))
        self.chunk = max(1, int(chunk))
        self._pool: ProcessPoolExecutor | None = None

    def find(self, tasks: Sequence[Task], settings: FindSettings, analyzer: FaceAnalyzer) -> Iterator[list[Found]]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(settings.per_finder(self.workers), os.getpid()),
            )
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
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# ------------------------------------------------------------------------------------------ Ray Data
class _RayFinder:
    """A Ray actor: one finder (detector and head, made from the settings on its node) called on batches of tasks."""

    def __init__(self, settings: FindSettings) -> None:
        omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # OpenMP allows a list: "4,2"
        threads = int(omp) if omp.isdigit() else 0
        if threads > 0:  # Ray gives an actor its CPUs as OMP_NUM_THREADS (torch reads it); OpenCV and yunet's
            import cv2  # onnxruntime engine take OpenCV's count, which would otherwise be every core of the node

            cv2.setNumThreads(threads)
        from lookalike.faces.detect import detector_from_params

        head = settings.make_head() if settings.make_head is not None else None
        self.analyzer = FaceAnalyzer(detector_from_params(settings.detector), head=head, crop=settings.crop)
        self.settings = settings
        self.budget = PixelBudget(settings.pixels_in_flight)

    def __call__(self, batch: dict) -> dict:
        tasks = [
            Task(str(p), bool(lab), k or None)
            for p, lab, k in zip(batch["path"], batch["labelled"], batch["known"], strict=True)
        ]
        found = [x for g in find_faces(tasks, self.settings, self.analyzer, self.budget) for x in g]
        for x in found:  # the crops were for the embedder, which ran here: what goes back is geometry and vectors
            if isinstance(x, AnalyzedPhoto):
                for f in x.faces:
                    if f.embedding is not None:
                        f.crop = f.crop[:0]
        return {"found": [pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL)]}


class RayData:
    """Ray actors find and embed the faces (`concurrency` actors, `batch_size` files per call); results come back
    in the tasks' order (Ray Data's `preserve_order`), so ids are those of the other distributors. The caller
    starts Ray (`ray.init`); on a cluster the photos must be readable at the same paths on every node."""

    name = "ray-data"
    embeds = True
    head_device = None

    def __init__(self, concurrency: int = 1, batch_size: int = 32, num_gpus: float = 0) -> None:
        self.concurrency = self.workers = max(1, int(concurrency))
        self.batch_size = max(1, int(batch_size))
        self.num_gpus = num_gpus

    def find(self, tasks: Sequence[Task], settings: FindSettings, analyzer: FaceAnalyzer) -> Iterator[list[Found]]:
        import ray

        if not tasks:
            return
        ctx = ray.data.DataContext.get_current()
        kept = ctx.execution_options.preserve_order
        ctx.execution_options.preserve_order = True  # ids follow the files' order; the caller's setting comes back
        try:
            items = [{"path": t.path, "labelled": t.labelled, "known": t.known_sha256 or ""} for t in tasks]
            ds = ray.data.from_items(items).map_batches(
                _RayFinder,
                fn_constructor_kwargs={"settings": settings.per_finder(self.concurrency)},
                batch_size=self.batch_size,
                compute=ray.data.ActorPoolStrategy(size=self.concurrency),
                **({"num_gpus": self.num_gpus} if self.num_gpus else {}),
            )
            for row in ds.iter_rows():
                yield pickle.loads(row["found"])
        finally:
            ctx.execution_options.preserve_order = kept

    def close(self) -> None:
        pass
