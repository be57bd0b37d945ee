"""Finding faces in files, the one way every runner does it: read, decode, detect, choose the main face and crop
(and, where the settings say, embed). `find_faces` is the loop; `FindSettings` is everything it needs, picklable, so
the very same call runs in this process (`read_ahead`: one reader thread decoding ahead of detection), in each
worker of `ParallelFinder` (one thread each), and in each Ray actor (`lookalike.index.distribute.RayData`).

Workers hold a detector (and a head only for a head that computes on one core holding the GIL, dlib:
`Head.embeds_in_workers`, or on a Ray node) and hand back crops and geometry, never decoded photos, so what crosses
between processes is small (a 160 px crop is 77 KB). Each finder bounds its own decoded pixels; results come back
in the order of the files, so ids are the same whichever runner found them.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lookalike.config import DEFAULT_BATCH_FILES, DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_PIXELS_IN_FLIGHT
from lookalike.faces.analyzer import AnalyzedPhoto, FaceAnalyzer
from lookalike.faces.photos import (
    Photo,
    PixelBudget,
    Rejected,
    Unchanged,
    drop_pixels,
    load_photo,
)

#: What one file gives: a reject, an unchanged file, or a photo with its faces (cropped; embedded when the settings
#: say so) or the reason it has none (`AnalyzedPhoto.error`). An analysed photo's pixels are dropped.
Found = AnalyzedPhoto | Rejected | Unchanged
Loaded = Photo | Rejected | Unchanged


@dataclass(frozen=True)
class Task:
    """A file to read: its path, whether it is labelled (keeps its best face below the min probability), and the
    digest already indexed for it (equal bytes give `Unchanged` without a decode)."""

    path: str
    labelled: bool = False
    known_sha256: str | None = None


@dataclass(frozen=True)
class FindSettings:
    """Everything a finder needs to find faces the way the index is built (picklable: it crosses to workers)."""

    detector: dict  # `describe_detector(...)`: the manifest's detector params (`detector_from_params` rebuilds it)
    crop: str
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    pixels_in_flight: int = DEFAULT_PIXELS_IN_FLIGHT  # per finder (each worker has its own)
    draft_side: int | None = None  # decode a large JPEG reduced to this long side (`load_photo`)
    batch_files: int = DEFAULT_BATCH_FILES
    #: embed in the finder too, with the head this makes (a picklable call, e.g. `partial(create_head, "dlib",
    #: device="cpu")`); None: the caller embeds
    make_head: Callable[[], Any] | None = None

    def per_finder(self, finders: int) -> FindSettings:
        """The settings of one of `finders` finders sharing the pixel budget."""
        return dataclasses.replace(self, pixels_in_flight=max(1, self.pixels_in_flight // max(1, finders)))


def read_batches(
    tasks: Sequence[Task], settings: FindSettings, budget: PixelBudget | None = None
) -> Iterator[list[Loaded]]:
    """Batches of loaded files, in the tasks' order, read by one background thread one batch ahead of the caller.

    Memory is bounded by decoded pixels, not photos: each decode draws its pixels from `budget`, and the
    caller gives a batch's pixels back (`release_batch`) when it is done with it. When a decode would have to
    wait for pixels, the reader hands over the batch it holds first, so the caller can free some.
    """
    budget = budget or PixelBudget(settings.pixels_in_flight)
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
            for t in tasks:
                if stop.is_set():
                    return
                # loaded first, appended after: the load may hand `current` over while it waits for pixels
                item = _load(t, settings, budget)
                current.append(item)
                if len(current) >= settings.batch_files:
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


def _load(task: Task, settings: FindSettings, budget: PixelBudget) -> Loaded:
    return load_photo(
        task.path,
        settings.max_pixels,
        max_bytes=settings.max_bytes,
        budget=budget,
        known_sha256=task.known_sha256,
        draft_side=settings.draft_side,
    )


def _analyze(analyzer: FaceAnalyzer, loaded: list[Loaded], labelled: list[bool], settings: FindSettings) -> list[Found]:
    """The found items of one group of loaded files, in their order (photos analysed in one batch)."""
    at = [i for i, x in enumerate(loaded) if isinstance(x, Photo)]
    photos = [loaded[i] for i in at]
    analyzed = analyzer.analyze(
        photos, keep_best=[labelled[i] for i in at], embed=settings.make_head is not None
    ) if photos else []  # fmt: skip
    out: list[Found] = list(loaded)  # type: ignore[arg-type]
    for i, a in zip(at, analyzed, strict=True):
        out[i] = a
    return out


def find_faces(
    tasks: Sequence[Task],
    settings: FindSettings,
    analyzer: FaceAnalyzer,
    budget: PixelBudget | None = None,
    read_ahead: bool = False,
) -> Iterator[list[Found]]:
    """Find the faces of `tasks`, yielding groups of found files in the tasks' order; never raises for a bad file.

    Photos are analysed together, up to `settings.batch_files`, or as many as the pixel budget holds: when a decode
    would wait for pixels, the photos held so far are analysed first and their pixels given back. read_ahead: one
    reader thread decodes the next group while this one is analysed (this process's path: decoding overlaps
    detection); without it (a worker with one thread) files are read in the calling thread.
    """
    budget = budget or PixelBudget(settings.pixels_in_flight)
    if read_ahead:
        it = 0
        batches = read_batches(tasks, settings, budget)
        try:
            for loaded in batches:
                labelled = [t.labelled for t in tasks[it : it + len(loaded)]]
                it += len(loaded)
                found = _analyze(analyzer, loaded, labelled, settings)
                release_batch(loaded, budget)
                yield found
        finally:
            batches.close()  # a failed run stops its reader thread too
        return
    held: list[Loaded] = []
    labels: list[bool] = []
    ready: list[list[Found]] = []

    def analyze_held() -> None:
        if held:
            group, flags = list(held), list(labels)
            held.clear()
            labels.clear()
            ready.append(_analyze(analyzer, group, flags, settings))
            release_batch(group, budget)

    budget.on_wait = analyze_held
    try:
        for t in tasks:
            held.append(_load(t, settings, budget))  # may analyse what is held first, to free pixels
            labels.append(t.labelled)
            if len(held) >= settings.batch_files:
                analyze_held()
            while ready:
                yield ready.pop(0)
        analyze_held()
        while ready:
            yield ready.pop(0)
    finally:
        budget.on_wait = None
        release_batch(held, budget)
