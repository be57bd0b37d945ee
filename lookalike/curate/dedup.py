"""De-duplication (seed 003, 7.3.2.2): exact copies (same sha256, or cosine >= 0.9999) and near duplicates
(cosine above a threshold, `config.DEDUP_COSINE` by default) among an index's main faces, via the range-search core.

Removal takes the later photo of each pair out of the index and keeps it on record: its face rows go to
`removed.parquet` in the index folder (with the kept photo, score and reason) and it becomes a reject
("duplicate of ..."), so an incremental `lookalike index` does not add it again; `restore` undoes it.
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
from lookalike.config import DEDUP_COSINE
from lookalike.curate.pairs import similar_pairs
from lookalike.errors import LookalikeError
from lookalike.index.layout import REMOVED
from lookalike.index.store import REJECTS_SCHEMA, FaceStore, faces_schema, now_utc, vectors_of
from lookalike.render import face_thumbnail, file_link, render_page

EXACT_COSINE = 0.9999
#: Pixel confirmation: a pair whose head cosine is only above `PIXEL_FLOOR` is still a near duplicate when
#: the photos' 8x8 colour thumbnails correlate above `PIXEL_THRESHOLD`. Face-identity heads (the offline
#: fallback when DINOv2 weights are absent) score a JPEG-q50 or resized copy of a 150 px photo as low as
#: 0.7-0.8, below other photos of the same person (up to 0.91), so the head alone cannot tell them apart;
#: the thumbnail does (copies >= 0.88 on planted LFW copies), and the floor keeps other people's photos out.
PIXEL_FLOOR = 0.6
PIXEL_THRESHOLD = 0.85


def thumbnail(path: str, size: int = 8) -> np.ndarray:
    """The whole photo as a `(size * size * 3,) float32` vector: area-resized, mean-centred per channel,
    L2-normalised (so a dot product is the thumbnails' correlation); zeros when the photo cannot be read."""
    import cv2

    from lookalike.faces.photos import Photo, load_photo

    item = load_photo(path)
    if not isinstance(item, Photo):
        return np.zeros(size * size * 3, np.float32)
    g = cv2.resize(item.rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    g = (g - g.mean(axis=(0, 1))).reshape(-1)
    return g / max(float(np.linalg.norm(g)), 1e-6)


@dataclass
class Duplicates:
    """Pairs found in one index; in each pair the first photo is the earlier indexed (the one kept)."""

    index: str
    head: str
    threshold: float
    photos: int
    exact: list[tuple[str, str]] = field(default_factory=list)
    near: list[tuple[str, str, float]] = field(default_factory=list)
    boxes: dict[str, list[float]] = field(default_factory=dict)
    scores: dict[tuple[str, str], float] = field(default_factory=dict)
    by_pixels: dict[tuple[str, str], float] = field(default_factory=dict)

    def as_json(self) -> dict:
        """`{"exact": [[a, b]], "near": [[a, b, head cosine]], "near_by_pixels": [[a, b, thumbnail corr]]}`."""
        return {
            "exact": [list(p) for p in self.exact],
            "near": [[a, b, round(s, 6)] for a, b, s in self.near],
            "near_by_pixels": [[a, b, round(c, 6)] for (a, b), c in self.by_pixels.items()],
        }


def find_duplicates(
    index_dir: Path,
    threshold: float = DEDUP_COSINE,
    pixel_check: bool = False,
    pixel_threshold: float = PIXEL_THRESHOLD,
    progress=None,
) -> Duplicates:
    """Exact and near-duplicate photo pairs among the main faces of the index at `index_dir`.

    Near: head cosine > `threshold`; with `pixel_check`, also head cosine > `PIXEL_FLOOR` and thumbnail
    correlation > `pixel_threshold` (those pairs are listed in `by_pixels` with their thumbnail score).
    """
    store = FaceStore.open(index_dir)
    t = store.faces(["vector_id", "path", "sha256", "is_main", "box", "embedding"])
    t = t.filter(t["is_main"])
    order = np.argsort(t["vector_id"].to_numpy(), kind="stable")
    t = t.take(pa.array(order))
    paths = t["path"].to_pylist()
    sha = t["sha256"].to_pylist()
    vec = vectors_of(t, store.dim)
    out = Duplicates(str(index_dir), store.head, float(threshold), len(paths))
    out.boxes = dict(zip(paths, t["box"].to_pylist()))
    floor = min(threshold, PIXEL_FLOOR) if pixel_check else threshold
    i, j, s = similar_pairs(vec, min(floor, EXACT_COSINE), progress=progress)
    thumbs: dict[int, np.ndarray] = {}
    exact: dict[tuple[int, int], float] = {}
    first_of: dict[str, int] = {}
    for k, h in enumerate(sha):  # same bytes: pair each copy with the first one
        if h in first_of:
            exact[(first_of[h], k)] = 1.0
        else:
            first_of[h] = k
    near = []
    for a, b, sc in zip(i.tolist(), j.tolist(), s.tolist()):
        if sha[a] == sha[b] or sc >= EXACT_COSINE:
            exact[(a, b)] = max(exact.get((a, b), 0.0), sc)
        elif sc > threshold:
            near.append((a, b, sc))
        elif pixel_check:
            ta = thumbs.setdefault(a, thumbnail(paths[a]))
            tb = thumbs.setdefault(b, thumbnail(paths[b]))
            corr = float(ta @ tb)
            if corr > pixel_threshold:
                near.append((a, b, sc))
                out.by_pixels[(paths[a], paths[b])] = corr
    out.exact = [(paths[a], paths[b]) for a, b in sorted(exact)]
    out.scores = {(paths[a], paths[b]): sc for (a, b), sc in exact.items()}
    near.sort(key=lambda x: -x[2])
    out.near = [(paths[a], paths[b], float(sc)) for a, b, sc in near]
    return out


def plan_removal(dups: Duplicates) -> list[dict]:
    """Which photos to remove: the later photo of each pair (exact pairs first, then near ones by score),
    unless the earlier one is itself removed already (then the later one stays as the survivor).

    A photo whose file has vanished since it was indexed is never kept over one that exists: of such a pair
    the vanished one goes (and of two vanished files, neither is anyone's survivor: the pair is skipped).
    """
    from lookalike.paths import fs_path

    removed: dict[str, dict] = {}
    candidates = [(a, b, dups.scores.get((a, b), 1.0), "exact duplicate") for a, b in dups.exact]
    candidates += [(a, b, s, "near duplicate") for a, b, s in dups.near]
    present: dict[str, bool] = {}

    def exists(p: str) -> bool:
        if p not in present:
            present[p] = os.path.isfile(fs_path(p))
        return present[p]

    for a, b, s, reason in candidates:
        if a in removed or b in removed:
            continue
        keep, drop = (a, b) if exists(a) else (b, a)
        if not exists(keep):
            continue
        removed[drop] = {"path": drop, "kept_path": keep, "score": float(s), "reason": reason}
    return list(removed.values())


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
                "reason": f"{p['reason']} of {p['kept_path']} (cosine {p['score']:.4f}); "
                "`lookalike dedup --restore` puts it back",
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
    """A page of the pairs side by side (exact first, then near by score), at most `limit` pairs: the whole
    photos (embedded), each linked to its file."""
    rows = [(a, b, dups.scores.get((a, b), 1.0), "exact") for a, b in dups.exact]
    rows += [(a, b, s, "near") for a, b, s in dups.near]

    def side(path: str) -> dict:
        return {"path": path, "thumb": face_thumbnail(path, None, size=256), "link": file_link(path)}

    pairs = []
    for a, b, s, kind in rows[:limit]:
        if (a, b) in dups.by_pixels:
            kind = f"near (pixels {dups.by_pixels[(a, b)]:.3f})"
        pairs.append({"a": side(a), "b": side(b), "score": s, "kind": kind})
    return render_page(
        "dedup.html", out, title=f"Duplicates in {dups.index}", index=dups.index, head=dups.head, photos=dups.photos,
        exact=len(dups.exact), near=len(dups.near), exact_cosine=EXACT_COSINE, threshold=dups.threshold,
        pixel_floor=PIXEL_FLOOR, pixel_threshold=PIXEL_THRESHOLD, by_pixels=len(dups.by_pixels), pairs=pairs,
        more=max(0, len(rows) - limit),
    )  # fmt: skip
