"""Answer "who looks like this face?" against an index: embed with the index's own head, search, collapse.

`Searcher` loads the head, the FAISS index and the face metadata once, so many query photos (or a
leave-one-out benchmark over stored vectors) share one model load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lookalike.errors import LookalikeError
from lookalike.faces.analyzer import Face, FaceAnalyzer
from lookalike.faces.detect import Detector, detector_from_params
from lookalike.faces.photos import Photo, load_photo, photo_from_array
from lookalike.heads import create_head
from lookalike.heads.calibration import DEFAULT_FMR, SamePerson, same_person
from lookalike.index.layout import PEOPLE
from lookalike.index.people import read_people
from lookalike.index.people_edits import edits_stamp, read_edits
from lookalike.index.store import FaceStore
from lookalike.index.vector_index import search, to_gpu_if_available
from lookalike.paths import to_text
from lookalike.search.asking import failure_words
from lookalike.search.meta import face_meta

MODES = ("faces", "identities")
#: Query photos decoded at once by `Searcher.query_photos` (their faces are batched for the head too).
QUERY_BATCH = 16


@dataclass
class Match:
    """One answer row."""

    rank: int
    score: float
    path: str
    identity: str | None
    face_id: str
    vector_id: int
    box: list[float]
    person: str | None = None  # from `lookalike cluster`, when it ran on this version of the index


@dataclass
class QueryAnswer:
    """Matches for one query photo (`error` set instead when the photo gave no usable face)."""

    query: str
    head: str
    face_index: int | None = None
    face_box: list[float] | None = None
    results: list[Match] = field(default_factory=list)
    error: str | None = None
    rerank: str | None = None  # how `--rerank metric` found its metric
    same_person: SamePerson | None = None  # the head's measured threshold (None: not measured, or reranked)
    sha256: str | None = field(default=None, repr=False)  # the query photo's content (not in the JSON)
    face: Face | None = field(default=None, repr=False)  # its face: box, crop, vector (not in the JSON)

    def as_json(self) -> dict:
        out: dict = {"query": self.query, "head": self.head}
        if self.error:
            out["error"] = self.error
        else:
            out["face_index"] = self.face_index
            out["face_box"] = self.face_box
        if self.rerank:
            out["rerank"] = self.rerank
        same = self.same_person if not self.rerank else None  # a reranked score is not the cosine it was set on
        if same is not None and not self.error:
            out["same_person"] = same.as_json()
        keys = ("rank", "score", "path", "identity", "face_id", "vector_id", "box")
        out["results"] = [
            {k: v for k, v in asdict(m).items() if k in keys}
            | ({"person": m.person} if m.person is not None else {})
            | ({"same_person": bool(m.score >= same.threshold)} if same is not None else {})
            for m in self.results
        ]
        return out


class Searcher:
    """An open index ready for queries. `head`: refuse unless the index was built by this head."""

    def __init__(
        self,
        index_path: str | Path,
        head: str | None = None,
        device: str | None = None,
        weights_dir: Path | None = None,
        load_head: bool = True,
        metadata: str = "auto",
    ) -> None:
        """metadata: "memory" (every face's path, label, ... loaded now: fastest answers; a server), "parquet"
        (read for each answer: a fast, small opening; a one-off query of a large index) or "auto" (the first up to
        200,000 faces, else the second)."""
        self.store = FaceStore.open(index_path)
        if head is not None:
            self.store.check_head(head)
        self.head = None
        if load_head:
            self.head = create_head(self.store.head, device=device, weights_dir=weights_dir)
            self.store.check_head(self.store.head, self.head.weights_sha256, self.head.preprocess_version)
        with self.store.snapshot():  # metadata and vectors of one generation, even while `index` finalizes
            self.meta = face_meta(self.store, metadata)
            index = self.store.load_index(mmap=True)
        self._ids = self.meta.ids
        self._sha_identity: dict[str, str] | None = None  # sha256 -> the label of its main face, built on first use
        self.index = to_gpu_if_available(index)
        self._load_people()
        self._device = device
        self._detector: Detector | None = None
        self._analyzer: FaceAnalyzer | None = None

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row positions (in this searcher's sorted metadata) of vector ids."""
        return np.searchsorted(self._ids, ids)

    def identity_of_sha(self, sha: str) -> str | None:
        """The label of an indexed photo's main face, by file content."""
        if self._sha_identity is None:
            shas, idents = self.meta.column("sha256"), self.meta.column("identity")
            self._sha_identity = {}
            for h, ident in zip(shas, idents, strict=True):
                if ident is not None and h is not None:
                    self._sha_identity.setdefault(str(h), str(ident))
        return self._sha_identity.get(sha)

    def search_vectors(
        self,
        queries: np.ndarray,
        k: int = 10,
        mode: str = "faces",
        exclude_sha: list[str | None] | None = None,
        exclude_identity: list[str | None] | None = None,
    ) -> list[list[Match]]:
        """Top-k matches for each query vector `(Q, d) float32, L2-normalised`.

        exclude_sha: per query, a file whose faces must not be returned (the query photo itself).
        exclude_identity: per query, an identity to leave out (identities mode: the query's own person).
        identities mode keeps the best face per identity; unlabelled faces each count as their own.
        """
        if mode not in MODES:
            raise LookalikeError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        nq = len(queries)
        exclude_sha = exclude_sha or [None] * nq
        exclude_identity = exclude_identity or [None] * nq
        want = k * 4 + 16 if mode == "faces" else k * 40 + 64
        answers: list[list[Match] | None] = [None] * nq
        todo = list(range(nq))
        while todo:
            kk = min(want, self.size)
            scores, ids = search(self.index, queries[todo], kk)
            retry = []
            for qi, srow, irow in zip(todo, scores, ids):
                matches = self._collect(srow, irow, k, mode, exclude_sha[qi], exclude_identity[qi])
                if len(matches) < k and kk < self.size:
                    retry.append(qi)
                else:
                    answers[qi] = matches
            todo = retry
            want *= 4
        return [a or [] for a in answers]

    def _collect(self, srow, irow, k, mode, ex_sha, ex_ident) -> list[Match]:
        valid = irow >= 0
        srow, irow = srow[valid], irow[valid]
        rows = self.rows_of(irow)
        meta = self.meta.rows(rows)  # one read for all the candidates
        out: list[Match] = []
        seen: set[str] = set()
        for score, vid, r in zip(srow, irow, rows):
            m = meta.get(int(r))
            if m is None:  # the index changed under this searcher: a face it no longer has
                continue
            if ex_sha is not None and m["sha256"] == ex_sha:
                continue
            ident = m["identity"]
            if ex_ident is not None and ident == ex_ident:
                continue
            if mode == "identities":
                key = ident if ident is not None else f"face:{vid}"
                if key in seen:
                    continue
                seen.add(key)
            out.append(
                Match(
                    rank=len(out) + 1,
                    score=round(float(score), 6),
                    path=str(m["path"]),
                    identity=None if ident is None else str(ident),
                    face_id=str(m["face_id"]),
                    vector_id=int(vid),
                    box=[round(float(v), 1) for v in m["box"]],
                    person=self._person.get(int(vid)),
                )
            )
            if len(out) >= k:
                break
        return out

    def path_at(self, row: int) -> str:
        """The photo of the face at `row` (this searcher's rows are in vector id order)."""
        return str(self.meta.rows(np.array([row]))[row]["path"])

    def box_at(self, row: int) -> list[float]:
        return [float(v) for v in self.meta.rows(np.array([row]))[row]["box"]]

    def id_at(self, row: int) -> int:
        return int(self._ids[row])

    def identities(self) -> list[str | None]:
        """Every face's identity label, by row."""
        return [None if i is None else str(i) for i in self.meta.column("identity")]

    def persons(self) -> list[str | None]:
        """Every face's person from `lookalike cluster` with the user's edits (None where it has not run on this
        version and no edit names it), by row."""
        self.refresh_people()
        return [self._person.get(int(v)) for v in self._ids]

    def people(self) -> tuple[list[str | None], str]:
        """Every face's person as the user sees it, by row: the people `lookalike cluster` found, else the labelled
        identities, with the user's edits (`index.people_edits`) on top; and which of the two."""
        self.refresh_people()
        if self._clustered:
            return self.persons(), "as `lookalike cluster` grouped them" + (", with your edits" if self._edited else "")
        shown = self._edits.apply(self.identities(), self.face_ids()) if self._edited else self.identities()
        return shown, "labelled identities; `lookalike cluster` finds the others" + (
            ", with your edits" if self._edited else ""
        )

    def faces_of_person(self, name: str) -> dict[str, np.ndarray]:
        """The faces of one person as the user sees them (`people`): photo path -> that face's 5 landmarks
        `(5, 2)` in the file's pixels (a photo holding two of their faces keeps its main one)."""
        names, _ = self.people()
        rows = [r for r, n in enumerate(names) if n == name]
        if not rows:
            return {}
        t = self.store.faces_by_id(self._ids[rows], ["path", "landmarks", "is_main"]).to_pydict()
        out: dict[str, np.ndarray] = {}
        for path, lm, _ in sorted(zip(t["path"], t["landmarks"], t["is_main"], strict=True), key=lambda r: not r[2]):
            out.setdefault(str(path), np.asarray(lm, np.float64).reshape(5, 2))
        return out

    def person_of(self, vector_id: int) -> str | None:
        """One face's person as `persons` gives it."""
        self.refresh_people()
        return self._person.get(int(vector_id))

    def hidden_people(self) -> set[str]:
        """The people the user hid from the People page."""
        self.refresh_people()
        return set(self._edits.hidden)

    def face_ids(self) -> list[str]:
        """Every face's `face_id`, by row."""
        return [str(f) for f in self.meta.column("face_id")]

    def _load_people(self) -> None:
        root = self.store.root
        self._people_stamp = self._stamp()
        self._edits = read_edits(root)
        self._edited = bool(self._edits)
        people = read_people(root, int(self.store.manifest.get("generation", -1)))
        self._clustered = people is not None
        if people is not None:
            found = people["person"].to_pylist()
            shown = self._edits.apply(found, [str(f) for f in people["face_id"].to_pylist()])
            self._person = dict(zip(people["vector_id"].to_pylist(), shown, strict=True))
        elif self._edited:  # no clustering: a labelled face shows the name the user gave its identity
            shown = self._edits.apply(self.identities(), self.face_ids())
            self._person = {int(v): p for v, p in zip(self._ids, shown, strict=True) if p is not None}
        else:
            self._person = {}

    def refresh_people(self) -> None:
        """Take up edits made since (by `lookalike people` or the web app) and a new `lookalike cluster` run."""
        if self._stamp() != self._people_stamp:
            self._load_people()

    def _stamp(self) -> tuple[int, int]:
        """Changes when the user's edits or `lookalike cluster`'s people do."""
        try:
            clustered = (self.store.root / PEOPLE).stat().st_mtime_ns
        except OSError:
            clustered = 0
        return edits_stamp(self.store.root), clustered

    def face_record(self, vector_id: int) -> dict | None:
        """The stored record of one face by its vector id: `{"vector_id", "face_id", "path", "identity", "box"}`."""
        r = int(self.rows_of(np.array([vector_id]))[0])
        if r >= len(self._ids) or int(self._ids[r]) != int(vector_id):
            return None
        m = self.meta.rows(np.array([r])).get(r)
        if m is None:
            return None
        return {"vector_id": int(vector_id), "face_id": str(m["face_id"]), "path": str(m["path"]),
                "identity": None if m["identity"] is None else str(m["identity"]),
                "box": [round(float(v), 1) for v in m["box"]]}  # fmt: skip

    @property
    def detector(self) -> Detector:
        """The detector the index was built with (same thresholds), loaded on first use."""
        if self._detector is None:
            self._detector = detector_from_params(self.store.manifest.get("params", {}), device=self._device)
        return self._detector

    @property
    def analyzer(self) -> FaceAnalyzer:
        """The index's detector with its head: how every query face is found, cropped and embedded."""
        if self._analyzer is None:
            if self.head is None:
                raise LookalikeError("this searcher was opened without its head")
            self._analyzer = FaceAnalyzer(self.detector, self.head)
        return self._analyzer

    def list_faces(self, paths: list[str | Path]) -> list[dict]:
        """The faces `--face N` numbers in each photo, main face first, as the index's detector finds them:
        `{"query", "faces": [{"face_index", "box", "prob"}]}` or `{"query", "error"}`; nothing is searched."""
        side = self.analyzer.detector.max_side
        out = []
        for p in paths:
            item = load_photo(p, draft_side=side)
            name = to_text(p)
            if not isinstance(item, Photo):
                out.append({"query": name, "error": f"cannot use {name}: {item.reason}"})
                continue
            a = self.analyzer.analyze([item], keep_best=True, embed=False)[0]
            if a.error:
                out.append({"query": name, "error": failure_words(a.error, name)})
                continue
            faces = [{"face_index": f.index, "box": [round(float(v), 1) for v in f.box], "prob": round(f.prob, 4)}
                     for f in a.faces]  # fmt: skip
            out.append({"query": name, "faces": faces})
        return out

    def query_texts(self, texts: list[str], k: int = 10, mode: str = "faces") -> list[QueryAnswer]:
        """Faces that match each text description, on an index whose head embeds text (CLIP): the texts' vectors
        searched like a photo's (cosine = CLIP similarity; no same-person mark, a text is nobody's face)."""
        from lookalike.heads.base import TEXT

        if self.head is None or not self.head.can(TEXT):
            raise LookalikeError(
                f"--text needs an index built by a head that embeds text (--head clip); "
                f"{self.store.root} was built by {self.store.head!r}"
            )
        answers = [QueryAnswer(query=t, head=self.store.head) for t in texts]
        for ans, res in zip(answers, self.search_vectors(self.head.embed_text(list(texts)), k, mode), strict=True):
            ans.results = res
        return answers

    def query_photos(
        self,
        paths: list[str | Path | np.ndarray | Photo],
        k: int = 10,
        mode: str = "faces",
        face: int | None = None,
        include_self: bool = False,
        identity: str | None = None,
        fmr: float = DEFAULT_FMR,
        all_faces: bool = False,
    ) -> list[QueryAnswer]:
        """Detect and align each photo like the gallery, embed its main face (or face `face`), search.

        paths: photo files, decoded images (`(H, W, 3)` RGB uint8 numpy arrays, named `<array N>` in answers), or
        `Photo`s already decoded (an upload: `faces.photos.photo_from_bytes`, its sha256 that of its bytes, so the
        upload of an indexed photo is left out of its own answer as the same file by path is).

        A query photo shows someone: its best face counts even below the index's min probability. Each answer
        keeps its photo's sha256 and its face (`face`: box, crop, vector), so nothing detects it again. Photos
        are decoded `QUERY_BATCH` at a time and dropped once their face is cut: many query photos never sit in
        memory together. Matches are marked likely the same person at the threshold measured at false match rate
        `fmr` (`lookalike.heads.calibration`). all_faces: one answer for every face of each photo (main face first,
        `face_index` telling them apart) instead of one for its main face (or face `face`).
        """
        same = same_person(self.store.head, self.analyzer.detector.name, fmr)
        names = [_query_name(p, i) for i, p in enumerate(paths)]
        per_photo = [QueryAnswer(query=n, head=self.store.head, same_person=same) for n in names]
        answers: list[QueryAnswer] = []
        chosen: list[QueryAnswer] = []
        for start in range(0, len(paths), QUERY_BATCH):
            part = per_photo[start : start + QUERY_BATCH]
            side = self.analyzer.detector.max_side  # decoded as the index decodes: a large JPEG reduced
            loaded = [
                p if isinstance(p, Photo)
                else photo_from_array(p, n) if isinstance(p, np.ndarray)
                else load_photo(p, draft_side=side)
                for p, n in zip(paths[start : start + QUERY_BATCH], names[start : start + QUERY_BATCH], strict=True)
            ]  # fmt: skip
            photos = [x for x in loaded if isinstance(x, Photo)]
            which = None if all_faces else face or 0
            analyzed = iter(self.analyzer.analyze(photos, keep_best=True, face=which) if photos else [])
            for ans, item in zip(part, loaded, strict=True):
                answers.append(ans)
                if not isinstance(item, Photo):
                    ans.error = f"cannot use {ans.query}: {item.reason}"
                    continue
                a = next(analyzed)
                if a.error:
                    ans.error = failure_words(a.error, ans.query)
                else:
                    ans.sha256, ans.face = item.sha256, a.faces[0]
                    chosen.append(ans)
                    for f in a.faces[1:]:  # all_faces: the photo's other faces, each its own answer
                        more = QueryAnswer(query=ans.query, head=ans.head, same_person=same, sha256=item.sha256, face=f)
                        answers.append(more)
                        chosen.append(more)
        if not chosen:
            return answers
        vectors = np.stack([a.face.embedding for a in chosen])  # type: ignore[union-attr]
        sha = [a.sha256 for a in chosen]
        ex_sha = [None if include_self else h for h in sha]
        ex_id = [identity or (self.identity_of_sha(h) if mode == "identities" else None) for h in sha]
        results = self.search_vectors(vectors, k, mode, ex_sha, ex_id if mode == "identities" else None)
        for ans, res in zip(chosen, results, strict=True):
            ans.face_index = ans.face.index  # type: ignore[union-attr]
            ans.face_box = [round(float(v), 1) for v in ans.face.box]  # type: ignore[union-attr]
            ans.results = res
        return answers


def _query_name(p: str | Path | np.ndarray | Photo, i: int) -> str:
    if isinstance(p, Photo):
        return p.stat.path
    return f"<array {i}>" if isinstance(p, np.ndarray) else to_text(p)
