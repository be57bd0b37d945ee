"""De-duplication (seed 003, 7.3.2.2), with three answers for a pair of an index's photos:

* **exact copy**: the same bytes (sha256);
* **same photo, edited** (a copy): a resize, re-encode, crop, rotation, colour edit, border, caption or screenshot
  of it; told by the pixels, not by the face embedding (`lookalike.curate.copies`: keypoints that one similarity
  transform explains, and the faces' pixel correlation once aligned);
* **similar shot**: the same person in a similar pose (face cosine above `threshold`, `config.DEDUP_COSINE` by
  default) in another photo: shown, never removed.

Candidates come from the faces' FAISS range search over every face (each photo's `NEIGHBOURS` nearest photos by
their best-matching faces above the head's strict same-person threshold, and every pair above `threshold`), so the
verification is O(photos), not O(photos^2).
Copies are grouped (connected pairs); the kept photo of a group is the oldest file (mtime), then the largest, then
the first indexed: copies are usually made after their original.

Removal takes every other photo of a group out of the index and keeps it on record: its face rows go to
`removed.parquet` in the index folder (with the kept photo, evidence and reason) and it becomes a reject
("copy of ..."), so an incremental `lookalike index` does not add it again; `restore` undoes it.
Both go through the index's normal crash-safe commit (`commit_part` + `finalize`); store.py is unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lookalike.atomic import atomic_write_with
from lookalike.config import DEDUP_COSINE, cpu_threads
from lookalike.curate.copies import MIN_FACE_CORR, MIN_INLIERS, Evidence, PhotoMatcher, nearest_pairs
from lookalike.curate.pairs import similar_pairs
from lookalike.errors import LookalikeError
from lookalike.index.layout import REMOVED
from lookalike.index.store import REJECTS_SCHEMA, FaceStore, faces_schema, now_utc, vectors_of
from lookalike.render import face_thumbnail, file_link, render_page

#: Candidates per photo for verification: its nearest faces (a copy is among a photo's nearest; measured on
#: planted copies in benchmarks/dedup.md).
NEIGHBOURS = 3
#: The candidate floor where the index's head has no measured same-person threshold.
CANDIDATE_COSINE = 0.5

EXACT = "exact copy"
COPY = "same photo, edited"
SIMILAR = "similar shot"


@dataclass
class Pair:
    """Two photos and the answer for them: `kind` EXACT, COPY or SIMILAR; `a` is the group's kept photo side
    where there is one."""

    a: str
    b: str
    kind: str
    cosine: float
    evidence: Evidence | None = None

    @property
    def why(self) -> str:
        """The evidence in words, for the pages."""
        ev = self.evidence
        if ev is None:
            return "same bytes"
        return f"{ev.inliers} keypoints agree; faces correlate {ev.face_corr:.3f}"

    def as_json(self) -> dict:
        out = {"a": self.a, "b": self.b, "kind": self.kind, "cosine": round(self.cosine, 6)}
        if self.evidence is not None:
            out["evidence"] = self.evidence.as_json()
        return out


@dataclass
class Group:
    """Photos that are copies of one another (connected exact or edited pairs), and the one kept."""

    keep: str
    copies: list[tuple[str, str]]  # (path, EXACT or COPY: how it is tied to the group)

    def as_json(self) -> dict:
        return {"keep": self.keep, "copies": [{"path": p, "kind": k} for p, k in self.copies]}


@dataclass
class Duplicates:
    """What dedup found in one index: pairs with their answer, and the copy groups."""

    index: str
    head: str
    threshold: float
    photos: int
    pairs: list[Pair] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    verified: int = 0

    def of(self, *kinds: str) -> list[Pair]:
        return [p for p in self.pairs if p.kind in kinds]

    def removable(self) -> dict[frozenset, Pair]:
        """The pairs whose photos are copies of each other (exact or edited): the only ones a photo may leave by."""
        return {frozenset((p.a, p.b)): p for p in self.of(EXACT, COPY)}

    def as_json(self) -> dict:
        return {
            "exact": [[p.a, p.b] for p in self.of(EXACT)],
            "copies": [p.as_json() for p in self.of(COPY)],
            "similar": [p.as_json() for p in self.of(SIMILAR)],
            "groups": [g.as_json() for g in self.groups],
            "verified": self.verified,
            "rule": {"copy": f"inliers >= {MIN_INLIERS} and face correlation >= {MIN_FACE_CORR}",
                     "similar": f"face cosine > {self.threshold}",
                     "keep": "oldest file, then largest, then first indexed"},
        }  # fmt: skip


def _candidate_floor(store: FaceStore, threshold: float) -> float:
    from lookalike.heads.calibration import FMRS, same_person

    detector = str(store.manifest.get("params", {}).get("detector", ""))
    point = same_person(store.head, detector, min(FMRS))
    return min(threshold, point.threshold if point is not None else CANDIDATE_COSINE)


def find_duplicates(
    index_dir: Path, threshold: float = DEDUP_COSINE, progress=None, verify_progress=None, workers: int = 0
) -> Duplicates:
    """Exact copies, edited copies and similar shots among the photos of the index at `index_dir`.

    progress: called with row counts during the range search; verify_progress: with 1 per verified pair;
    workers: threads comparing pixels [the CPUs this process may use, at most 8].
    """
    store = FaceStore.open(index_dir)
    every = store.faces(["vector_id", "path", "sha256", "is_main", "box", "file_size", "mtime_ns", "embedding"])
    every = every.take(pa.array(np.argsort(every["vector_id"].to_numpy(), kind="stable")))
    t = every.filter(every["is_main"])  # one row per photo
    paths = t["path"].to_pylist()
    sha = t["sha256"].to_pylist()
    vec = vectors_of(t, store.dim)
    out = Duplicates(str(index_dir), store.head, float(threshold), len(paths))
    found: dict[tuple[int, int], Pair] = {}
    first_of: dict[str, int] = {}
    for k, h in enumerate(sha):  # same bytes: pair each copy with the first one
        if h in first_of:
            found[(first_of[h], k)] = Pair(paths[first_of[h]], paths[k], EXACT, float(vec[first_of[h]] @ vec[k]))
        else:
            first_of[h] = k
    # candidates from every face, not just the main one: a crop of a group photo, or a scene with a second face,
    # may make another face the main one in the copy
    photo_of = {p: k for k, p in enumerate(paths)}
    face_photo = np.array([photo_of.get(p, -1) for p in every["path"].to_pylist()])
    face_box = every["box"].to_pylist()
    i, j, s = similar_pairs(vectors_of(every, store.dim), _candidate_floor(store, threshold), progress=progress)
    best: dict[tuple[int, int], tuple[float, int]] = {}  # photo pair -> (best face cosine, that face in photo a)
    for fi, fj, sc in zip(i.tolist(), j.tolist(), s.tolist()):
        a, b = int(face_photo[fi]), int(face_photo[fj])
        if a == b or a < 0 or b < 0 or sha[a] == sha[b]:
            continue
        if a > b:
            a, b, fi, fj = b, a, fj, fi
        if sc > best.get((a, b), (-2.0, 0))[0]:
            best[(a, b)] = (sc, fi)
    pa_, pb_ = np.array([k[0] for k in best], np.int64), np.array([k[1] for k in best], np.int64)
    ps_ = np.array([v[0] for v in best.values()], np.float64)
    keep = nearest_pairs(pa_, pb_, ps_, NEIGHBOURS) | (ps_ > threshold)
    todo = sorted((a, b, sc, face_box[best[(a, b)][1]])
                  for a, b, sc, k in zip(pa_.tolist(), pb_.tolist(), ps_.tolist(), keep.tolist()) if k)  # fmt: skip
    for (a, b, sc, _), ev in zip(todo, _verify(todo, paths, workers, verify_progress)):
        out.verified += 1
        if ev.is_copy:
            found[(a, b)] = Pair(paths[a], paths[b], COPY, float(sc), ev)
        elif sc > threshold:
            found[(a, b)] = Pair(paths[a], paths[b], SIMILAR, float(sc), ev)
    out.groups = _groups(found, paths, t["mtime_ns"].to_pylist(), t["file_size"].to_pylist())
    kept = {g.keep for g in out.groups}
    for pair in found.values():  # the kept photo on the left
        if pair.b in kept:
            pair.a, pair.b = pair.b, pair.a
    rank = {EXACT: 0, COPY: 1, SIMILAR: 2}
    out.pairs = sorted(found.values(), key=lambda p: (rank[p.kind], -(p.evidence.face_corr if p.evidence else 1.0),
                                                      -p.cosine))  # fmt: skip
    return out


def _verify(todo: list, paths: list[str], workers: int, progress) -> list[Evidence]:
    """The evidence of each candidate `(a, b, cosine, the matched face's box in a)`, in order. Threads (OpenCV's
    keypoints, matching and warps release the GIL), each with its own matcher over a contiguous run of `todo`, which
    is sorted by its first photo so a photo's pairs meet it while its keypoints are cached."""
    import itertools
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    workers = max(1, min(workers or cpu_threads(), 8, len(todo) // 64 + 1))
    out: list[Evidence | None] = [None] * len(todo)
    lock = threading.Lock()
    bounds = np.linspace(0, len(todo), workers + 1).round().astype(int)

    def run(lo: int, hi: int) -> None:
        matcher = PhotoMatcher()
        for n in range(lo, hi):
            a, b, _, box = todo[n]
            try:
                out[n] = matcher.compare(paths[a], box, paths[b])
            except cv2.error:  # a degenerate photo OpenCV refuses: no evidence of a copy, not a crash
                out[n] = Evidence(0, 0.0)
            if progress is not None:
                with lock:
                    progress(1)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for f in [pool.submit(run, int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds)]:
            f.result()
    return out  # type: ignore[return-value]


def _groups(found: dict[tuple[int, int], Pair], paths: list[str], mtimes: list, sizes: list) -> list[Group]:
    """Connected exact and edited pairs; in each, the kept photo: the oldest file, then the largest, then the
    first indexed."""
    parent = list(range(len(paths)))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    how: dict[int, str] = {}
    for (a, b), pair in found.items():
        if pair.kind in (EXACT, COPY):
            parent[root(b)] = root(a)
            how[a] = how.get(a, pair.kind)
            how[b] = EXACT if pair.kind == EXACT or how.get(b) == EXACT else pair.kind
    members: dict[int, list[int]] = {}
    for x in how:
        members.setdefault(root(x), []).append(x)
    groups = []
    for group in members.values():
        ordered = sorted(group, key=lambda x: (mtimes[x] if mtimes[x] is not None else 0, -(sizes[x] or 0), x))
        groups.append(Group(paths[ordered[0]], [(paths[x], how[x]) for x in ordered[1:]]))
    groups.sort(key=lambda g: g.keep)
    return groups


def plan_removal(dups: Duplicates) -> list[dict]:
    """Which photos to remove: every photo of a copy group but the kept one. Similar shots are never removed.

    A photo whose file has vanished since it was indexed is never kept over one that exists: the group's next
    photo that exists is kept instead (a group none of whose files exist is skipped).
    """
    from lookalike.paths import fs_path

    plan = []
    direct = dups.removable()
    for g in dups.groups:
        order = [g.keep] + [p for p, _ in g.copies]
        kinds = {p: k for p, k in g.copies}
        present = [p for p in order if os.path.isfile(fs_path(p))]
        if not present:
            continue
        keep = present[0]
        for p in order:
            if p != keep:
                pair = direct.get(frozenset((keep, p)))  # score: the faces' pixel correlation (1.0: same bytes)
                score = pair.evidence.face_corr if pair is not None and pair.evidence is not None else 1.0
                reason = kinds.get(p, kinds.get(keep, COPY))  # the old kept photo: tied as the new one is
                plan.append({"path": p, "kept_path": keep, "score": score, "reason": reason})
    return plan


def _read_record(record: Path) -> pa.Table:
    """`removed.parquet`, or a one-line error when it is damaged (the faces it holds are out of the index)."""
    try:
        return pq.read_table(record)
    except (OSError, pa.ArrowInvalid) as e:
        raise LookalikeError(
            f"cannot read {record} ({' '.join(str(e).split())[:100]}): the photos it took out stay out; move it "
            "away and index the folder again to bring them back"
        ) from None


def _writer(store: FaceStore):
    m = store.manifest
    return FaceStore.writer(store.root, m["head"], int(m["dim"]), m.get("weights_sha256", ""), m.get("params", {}))


def _removed_schema(dim: int) -> pa.Schema:
    extra = [
        ("kept_path", pa.string()),
        ("score", pa.float32()),
        ("reason", pa.string()),
        ("removed_at", pa.timestamp("us", tz="UTC")),
    ]
    return pa.schema(list(faces_schema(dim)) + [pa.field(n, t) for n, t in extra])


def remove_duplicates(index_dir: Path, plan: list[dict]) -> int:
    """Take the planned photos out of the index (all their faces), record them in `removed.parquet`."""
    if not plan:
        return 0
    store = FaceStore.open(index_dir)
    by_path = {p["path"]: p for p in plan}
    faces = store.faces()
    mask = pa.array([p in by_path for p in faces["path"].to_pylist()])
    rows = faces.filter(mask)
    now = now_utc()
    info = [by_path[p] for p in rows["path"].to_pylist()]
    rows = rows.append_column("kept_path", pa.array([x["kept_path"] for x in info], pa.string()))
    rows = rows.append_column("score", pa.array([x["score"] for x in info], pa.float32()))
    rows = rows.append_column("reason", pa.array([x["reason"] for x in info], pa.string()))
    rows = rows.append_column("removed_at", pa.array([now] * rows.num_rows, pa.timestamp("us", tz="UTC")))
    rows = rows.cast(_removed_schema(store.dim))
    record = Path(index_dir) / REMOVED
    first = {}
    for r in faces.filter(mask).select(["path", "sha256", "file_size", "mtime_ns"]).to_pylist():
        first.setdefault(r["path"], r)
    rejects = pa.Table.from_pylist(
        [
            {
                **first[p["path"]],
                "reason": f"{p['reason']} of {p['kept_path']}; `lookalike dedup --restore` puts it back",
                "added_at": now,
            }
            for p in plan
            if p["path"] in first
        ],
        schema=REJECTS_SCHEMA,
    )
    with _writer(store) as w:  # the record and the removal under the writer lock, all or nothing:
        if record.exists():  # read under the lock too: another removal may have just written it
            rows = pa.concat_tables([_read_record(record), rows])

        def record_then_remove(tmp: str) -> None:
            pq.write_table(rows, tmp, compression="zstd", write_page_checksum=True)  # full disk: nothing changed
            w.commit_part(faces_schema(store.dim).empty_table(), rejects)  # a later part supersedes their faces

        # the record is in place only once the removal is committed (atomic_write_with renames it after this)
        atomic_write_with(record, record_then_remove)
        try:
            w.finalize()
        except OSError as e:  # the removal stands (a committed part) and is recorded; only compacting failed
            raise LookalikeError(
                f"removed {len(first)} photos (recorded in {record.name}; `lookalike dedup --restore` puts them "
                f"back), but compacting the index failed ({e.strerror or e}): the next `lookalike index` finishes it"
            ) from None
    return len(first)


def restore_removed(index_dir: Path) -> int:
    """Put every photo `remove_duplicates` took out back into the index (same vector ids)."""
    store = FaceStore.open(index_dir)
    record = Path(index_dir) / REMOVED
    if not record.exists():
        raise LookalikeError(f"nothing to restore: {record} does not exist")
    with _writer(store) as w:  # the record is read and dropped under the writer lock
        rows = _read_record(record)
        faces = rows.select(faces_schema(store.dim).names).cast(faces_schema(store.dim))
        w.commit_part(faces, REJECTS_SCHEMA.empty_table())  # a later part supersedes their reject rows
        w.finalize()
        record.unlink()
    return len(set(faces["path"].to_pylist()))


def write_html(dups: Duplicates, out: Path, limit: int = 500) -> Path:
    """A page of the pairs side by side (copies first, then similar shots apart), at most `limit` pairs: the whole
    photos (embedded), each linked to its file, with each pair's answer and evidence."""

    def side(path: str) -> dict:
        return {"path": path, "thumb": face_thumbnail(path, None, size=256), "link": file_link(path)}

    def row(p: Pair) -> dict:
        return {"a": side(p.a), "b": side(p.b), "score": p.cosine, "kind": p.kind, "why": p.why}

    copies = dups.of(EXACT, COPY)
    similar = dups.of(SIMILAR)
    return render_page(
        "dedup.html", out, title=f"Duplicates in {dups.index}", index=dups.index, head=dups.head, photos=dups.photos,
        exact=len(dups.of(EXACT)), copies=len(dups.of(COPY)), groups=len(dups.groups), threshold=dups.threshold,
        min_inliers=MIN_INLIERS, min_face_corr=MIN_FACE_CORR, copy_pairs=[row(p) for p in copies[:limit]],
        similar_pairs=[row(p) for p in similar[:limit]],
        more=max(0, len(copies) - limit) + max(0, len(similar) - limit),
    )  # fmt: skip
