"""The library's front: build an index, open one, ask it who looks like whom. `import lookalike` exposes these names.

    ix = lookalike.build_index("photos/", name="family")
    answer = ix.query("me.jpg", k=5)          # a QueryAnswer: .results, each a Match (rank, score, identity, path)
    verdict = ix.verify("a.jpg", "b.jpg")     # a Verdict: .score, .threshold, .same_person
    ix.duplicates().groups                    # copies of one photo (exact or edited), each with the one kept
    ix.info()                                 # faces, files, head, detector, ...
    ix.hybrid("Ann", "Bob").image             # a facial hybrid of two people of the index (`lookalike.hybrid`:
                                              # of two lists of photos)
    lookalike.indexes()                       # every named index

Each function takes what the matching CLI verb takes and refuses the same way (a `LookalikeError` with the
one-line message the CLI prints). Models load on first use and stay loaded in the `Index` object.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.errors import LookalikeError
from lookalike.heads.calibration import DEFAULT_FMR

if TYPE_CHECKING:
    import numpy as np

    from lookalike.curate.dedup import Duplicates
    from lookalike.index.runner import IndexReport
    from lookalike.search.query import QueryAnswer, Searcher
    from lookalike.search.verify import Verdict
    from lookalike.similarity.hybrid import Hybrid

__all__ = ["Index", "build_index", "indexes", "open_index"]


class _Progress:
    """A run's progress as calls to `callback(files_done, total_files, faces_found)`."""

    def __init__(self, callback: Callable[[int, int, int], None]) -> None:
        self.callback, self.total, self.files, self.faces = callback, 0, 0, 0

    def start(self, total_files: int) -> None:
        self.total = total_files
        self.callback(0, total_files, 0)

    def advance(self, files: int, faces: int) -> None:
        self.files += files
        self.faces += faces
        self.callback(self.files, self.total, self.faces)


def build_index(
    source: str | Path,
    name: str | None = None,
    *,
    out: str | Path | None = None,
    head: str | None = None,
    detector: str | None = None,
    labels: str | Path | dict[str, str] | None = None,
    prune: bool = False,
    workers: int | None = None,
    device: str | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> Index:
    """Find, align and embed every face under `source` (a folder, a photo, or a text file of paths), as
    `lookalike index` does: into the named index `name` (default: the folder's name) or the folder `out`.

    Re-running adds only new or changed photos. labels: a `path,identity` CSV file or a `{path: identity}` dict.
    progress: called with `(files_done, total_files, faces_found)` as the run goes. Returns the open `Index`; its
    `report` holds what this run did.
    """
    from lookalike.faces.labels import read_labels
    from lookalike.index.registry import remember
    from lookalike.index.runner import IndexOptions, run_index
    from lookalike.index.settings import resolve
    from lookalike.index.store import FaceStore

    source = Path(source).expanduser()
    if not source.exists():
        raise LookalikeError(f"no such folder or file: {source}")
    plan = resolve(source, name, out, head, detector)
    label_map = read_labels(Path(labels)) if isinstance(labels, (str, Path)) else labels
    opts = IndexOptions(labels=label_map, prune=prune, workers=workers)
    head_model, detector_model = plan.load(device)
    report = run_index(source, plan.out, head_model, detector_model, opts, _Progress(progress) if progress else None)
    if plan.name:
        remember(plan.name, plan.out, FaceStore.exists)
    ix = Index(plan.out, device=device)
    ix.report = report
    return ix


def open_index(name_or_path: str | Path | None = None, *, device: str | None = None) -> Index:
    """An index by name or folder (None: the only one there is), as `--index` finds it."""
    from lookalike.index.store import FaceStore
    from lookalike.index.summary import locate

    root = locate(name_or_path)
    FaceStore.open(root)  # a missing or damaged index is refused here, not at the first query
    return Index(root, device=device)


def indexes() -> list[dict]:
    """Every named index: `name`, `folder`, `faces`, `files`, `head`, `detector`, `updated` (as `lookalike
    indexes --json`)."""
    from lookalike.index.summary import list_indexes

    return list_indexes()


class Index:
    """An index folder. Queries load its head and detector once, on first use, and keep them."""

    def __init__(self, root: str | Path, device: str | None = None) -> None:
        self.root = Path(root)
        self.device = device
        self.report: IndexReport | None = None
        self._searcher: Searcher | None = None

    def __repr__(self) -> str:
        return f"Index({str(self.root)!r})"

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def searcher(self) -> Searcher:
        """The loaded `Searcher` (models, vectors and metadata), made on first use."""
        if self._searcher is None:
            from lookalike.search.query import Searcher

            self._searcher = Searcher(self.root, device=self.device)
        return self._searcher

    def query(
        self,
        photo: str | Path | np.ndarray,
        k: int = 10,
        *,
        mode: str = "faces",
        face: int | None = None,
        identity: str | None = None,
        include_self: bool = False,
        fmr: float = DEFAULT_FMR,
    ) -> QueryAnswer:
        """Who looks like the main face (or face `face`) of `photo` (a file, or an `(H, W, 3)` RGB uint8 array)?

        mode "faces": the k most similar faces; "identities": the best face of each of the k most similar people.
        Returns a `QueryAnswer` (`.results`: `Match`es best first; `.as_json()`: what `query --json` prints);
        a photo that cannot be answered (unreadable, no face) is a LookalikeError.
        """
        from lookalike.search.asking import check_face, check_fmr, check_k, check_mode

        k, mode, fmr = check_k(k), check_mode(mode), check_fmr(fmr)  # the CLI's and the server's checks
        face = None if face is None else check_face(face)
        photo = photo if not isinstance(photo, (str, Path)) else str(Path(photo).expanduser())
        (answer,) = self.searcher.query_photos(
            [photo], k=k, mode=mode, face=face, identity=identity, include_self=include_self, fmr=fmr
        )
        if answer.error:
            raise LookalikeError(answer.error)
        return answer

    def verify(self, a: str | Path | np.ndarray, b: str | Path | np.ndarray, *, fmr: float = DEFAULT_FMR) -> Verdict:
        """Are the main faces of photos `a` and `b` the same person, judged as this index's query marks judge
        (its head, detector and the threshold measured at false match rate `fmr`)?"""
        from lookalike.search.asking import check_fmr
        from lookalike.search.verify import verify

        fmr = check_fmr(fmr)
        a = a if not isinstance(a, (str, Path)) else str(Path(a).expanduser())
        b = b if not isinstance(b, (str, Path)) else str(Path(b).expanduser())
        return verify(self.searcher.analyzer, a, b, fmr=fmr)

    def duplicates(self, *, threshold: float | None = None) -> Duplicates:
        """Copies among the index's photos, as `lookalike dedup` finds them: `.pairs` (each with `.kind`: exact
        copy, same photo edited or similar shot, and its evidence), `.groups` (copies with the photo kept);
        `threshold`: the face cosine above which another photo is a similar shot [config.DEDUP_COSINE]."""
        from lookalike.config import DEDUP_COSINE
        from lookalike.curate.dedup import find_duplicates
        from lookalike.search.asking import check_threshold

        return find_duplicates(self.root, DEDUP_COSINE if threshold is None else check_threshold(threshold))

    def hybrid(self, person_a: str, person_b: str, *, steps: int = 150) -> Hybrid:
        """A facial hybrid of two people of the index (names as `lookalike people` shows them), from their
        indexed faces, as `hybrid` makes it."""
        faces = []
        for name in (person_a, person_b):
            found = self.searcher.faces_of_person(name)
            if not found:
                raise LookalikeError(f"nobody called {name!r} in index {self.name}")
            faces.append(found)
        return hybrid(list(faces[0]), list(faces[1]), names=(person_a, person_b), steps=steps,
                      known=(faces[0], faces[1]), detector=self.searcher.detector)  # fmt: skip

    def info(self) -> dict:
        """What the index holds (as `lookalike info --json`); damage is an IndexCorruptError."""
        from lookalike.index.summary import describe

        return describe(self.root)


def hybrid(
    photos_a: list[str | Path],
    photos_b: list[str | Path],
    *,
    names: tuple[str, str] = ("A", "B"),
    portraits: tuple[str | Path | None, str | Path | None] = (None, None),
    steps: int = 150,
    **options,
) -> Hybrid:
    """A facial hybrid of two people, as `lookalike hybrid` makes it, from each one's photos (>= 2 with a face):
    `.image` `(320, 320, 3)` RGB, `.source` (segment -> 0 or 1: whose part), `.people` (portraits, PCAMs,
    eq. 10 scores), `.as_json()`. `portraits`: the photo to use for each person (else the most symmetric one).
    Needs torch (the metric is learnt with it) and dlib (68 landmarks): `pip install 'lookalike[torch,dlib]'`."""
    from lookalike import optional

    optional.require("torch", "hybrid (a metric learnt on FaceNet's feature maps)")
    from lookalike.similarity.hybrid import make_hybrid

    return make_hybrid(list(photos_a), list(photos_b), names=names, portraits=portraits, steps=steps, **options)
