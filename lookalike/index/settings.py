"""What an indexing run will use, decided before any model loads (`resolve`): where the index is, and the head,
detector and thresholds of a new index or the ones an existing index keeps. The CLI, the library, the curate verbs,
the benchmarks and the Ray pipeline all start here, so an existing index's rules live in one place; `load` then
makes the models those settings name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike import config
from lookalike.errors import LookalikeError

if TYPE_CHECKING:
    from lookalike.faces.detect import Detector
    from lookalike.heads import Head


@dataclass(frozen=True)
class IndexSettings:
    """The settings a run builds with: the folder, the index's name (None for a bare folder), the head and the
    detector with its thresholds (None: the detector's own default)."""

    out: Path
    name: str | None
    head: str
    detector: str | None
    min_prob: float | None
    min_face: int | None
    existing: bool

    def load(self, device: str | None = None) -> tuple[Head, Detector]:
        """The head and detector these settings name, loaded (`device`: torch device, default cuda when present)."""
        from lookalike.faces.detect import DEFAULT_MIN_FACE, create_detector
        from lookalike.heads import create_head

        head = create_head(self.head, device=device)
        detector = create_detector(self.detector, self.min_prob, int(self.min_face or DEFAULT_MIN_FACE), device=device)
        return head, detector


def target_folder(source: Path, name: str | None, out: Path | None) -> tuple[Path, str | None]:
    """The index folder for `--name`/`--out` (a name defaults to the source folder's), and the name."""
    from lookalike.index.store import FaceStore
    from lookalike.index.summary import check_name, legacy_notice

    if name is not None:
        check_name(name)
    named = name or (None if out is not None else Path(source).resolve().name)
    if out is not None:
        return Path(out), named
    out = config.index_home() / str(named)
    old = config.legacy_index_home() / str(named)
    if not FaceStore.looks_like_index(out) and old != out and FaceStore.looks_like_index(old):
        legacy_notice(old, out)  # keep adding to the index where it is, rather than start a second one
        out = old
    return out, named


def resolve(
    source: str | Path,
    name: str | None = None,
    out: str | Path | None = None,
    head: str | None = None,
    detector: str | None = None,
    min_prob: float | None = None,
    min_face: int | None = None,
    index_type: str = "auto",
) -> IndexSettings:
    """The run's settings, or a one-line error for anything that would refuse it (a foreign folder, another
    head or detector than the index was built with, a bad index type). Loads no model."""
    from lookalike.faces.detect import LEGACY_DETECTOR, detector_spec
    from lookalike.heads import DEFAULT_HEAD, get_head_spec
    from lookalike.index.store import FaceStore
    from lookalike.index.vector_index import check_factory

    folder, named = target_folder(Path(source), name, Path(out) if out is not None else None)
    FaceStore.check_target(folder)
    existing = FaceStore.exists(folder)
    if existing:
        store = FaceStore.open(folder)
        built = store.manifest.get("params", {})
        head = head or store.head
        # the same weights with another preprocessing give other vectors: refuse before loading
        store.check_head(head, None, get_head_spec(head).preprocess_version)
        was = detector_spec(str(built.get("detector", LEGACY_DETECTOR))).name
        if detector is not None and detector_spec(detector).name != was:
            raise LookalikeError(f"index {folder} was built with detector {was!r}: use --detector {was} or a new index")
        detector = was
        min_prob = built.get("min_prob") if min_prob is None else min_prob
        min_face = built.get("min_face_size") if min_face is None else min_face
    else:
        head = head or DEFAULT_HEAD
        if detector is not None:
            detector = detector_spec(detector).name
    check_factory(index_type, get_head_spec(head).dim)
    return IndexSettings(folder, named, head, detector, min_prob, min_face, existing)
