"""The index folder on disk: `manifest.json`, `faces.parquet`, `rejects.parquet`, `index.faiss`.

Crash safety. A run commits work in parts: `parts/NNNNNN.faces.parquet` + `parts/NNNNNN.rejects.parquet`,
each written to a temp name and renamed, then named in the manifest (itself replaced atomically). Only
parts the manifest names exist as far as any reader is concerned. `finalize` folds the pending parts into
the three main files: it writes them all to temp names, writes a journal (`finalize.json`) naming them,
renames them into place, commits the manifest, then drops the journal and the parts. Opening the folder
for writing replays or discards whatever a killed run left, so a run killed at any instant and started
again ends with the same index as an uninterrupted one.

Concurrency: one writer at a time (`.writer.lock`); readers take `.state.lock` shared while they load
(re-reading the manifest under it, so a reader sees one generation, never half of two), and the writer
takes it exclusively while it swaps files.

Ownership: the engine deletes only files whose names it makes (parts, its temp files, finalize's renamed
files named in the journal), never anything else a user keeps in the folder; a new index is never made in
a folder that holds other files. Damage (a lost manifest, a truncated, zeroed or deleted data file) is
detected on open (`IndexCorruptError`, one line) and `repair` rebuilds the folder from what survives.

Why one module of ~800 lines: `FaceStore` is the one owner of these invariants (which files a generation is made
of, who may swap them, what recovery may delete), and every method that reads or writes the folder depends on all
of them; split across modules, a change to one rule would have to be checked in several. The file names are
`layout.py`'s, the compaction's vector index `vector_index.py`'s, rebuilding from damage `repair.py`'s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lookalike.atomic import atomic_write_text, atomic_write_with
from lookalike.errors import HeadMismatchError, IndexCorruptError, IndexNotFoundError, LookalikeError
from lookalike.index.layout import (
    FACES,
    GENERATION_KEY,
    INDEX,
    JOURNAL,
    LOCKS,
    MANIFEST,
    MANIFEST_KEY,
    PARTS,
    REJECTS,
    REMOVED,
    STATE_LOCK,
    WRITER_LOCK,
)
from lookalike.locks import file_lock

FORMAT_VERSION = 1
_GEN_KEY = GENERATION_KEY
_LOCKS = LOCKS
_DATA_FILES = (FACES, REJECTS, INDEX)
#: Names the engine makes, and so the only names its recovery may delete.
PART_RE = re.compile(r"^\d{6}-\d+\.(faces|rejects)\.parquet$")
_PART_TMP_RE = re.compile(r"^\.\d{6}-\d+\.(faces|rejects)\.parquet\.[a-z0-9_]+\.tmp$")
_FINAL_RE = re.compile(rf"^finalize-\d+-({'|'.join(re.escape(n) for n in (FACES, REJECTS, INDEX))})$")
_DATA_NAMES = "|".join(re.escape(n) for n in (FACES, REJECTS, INDEX))
_ROOT_TMP_RE = re.compile(
    rf"^\.({'|'.join(re.escape(n) for n in (MANIFEST, JOURNAL, FACES, REJECTS, INDEX, REMOVED))}|"
    rf"finalize-\d+-({_DATA_NAMES}))\.[a-z0-9_]+\.tmp$"
)


def faces_schema(dim: int) -> pa.Schema:
    """Columns of `faces.parquet`; `embedding` is `(dim,) float32`, L2-normalised."""
    return pa.schema(
        [
            ("vector_id", pa.int64()),
            ("face_id", pa.string()),
            ("path", pa.string()),
            ("sha256", pa.string()),
            ("file_size", pa.int64()),
            ("mtime_ns", pa.int64()),
            ("face_index", pa.int32()),
            ("is_main", pa.bool_()),
            ("box", pa.list_(pa.float32(), 4)),
            ("landmarks", pa.list_(pa.float32(), 10)),
            ("prob", pa.float32()),
            ("identity", pa.string()),
            ("head", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("added_at", pa.timestamp("us", tz="UTC")),
            ("embedding", pa.list_(pa.float32(), dim)),
        ]
    )


REJECTS_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("sha256", pa.string()),
        ("file_size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("reason", pa.string()),
        ("added_at", pa.timestamp("us", tz="UTC")),
    ]
)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def vectors_of(table: pa.Table, dim: int) -> np.ndarray:
    """The `embedding` column as `(N, dim) float32`."""
    if table.num_rows == 0:
        return np.zeros((0, dim), dtype=np.float32)
    col = table.column("embedding").combine_chunks()
    return np.asarray(col.values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)


def _parquet_generation(path: Path, strict: bool = False) -> int | None:
    """The generation a main Parquet file was written for (None for parts and old files)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        if strict:
            raise
        return None
    return int(meta[_GEN_KEY]) if _GEN_KEY in meta else None


#: Rows per Parquet row group of the main faces file of a large index (over `LARGE_INDEX` faces): its rows are in
#: vector id order, so a lookup of a few ids reads only the groups whose id range holds them
#: (`FaceStore.faces_by_id`), not the whole file. It costs each finalize time (300k faces: 4.8 s to write instead of
#: 2.8, benchmarks/scale.md), so a smaller index, whose searchers load its metadata whole, keeps Parquet's groups.
FACES_ROW_GROUP = 4_096
#: `check()` reads every data page when the index's Parquet files are this small or smaller (`info --verify` always).
DEEP_CHECK_BYTES = 2 * 2**30
#: Faces above which an index is written for on-demand metadata, and a one-off searcher reads it that way.
LARGE_INDEX = 200_000


class _SortedFaces:
    """The main faces file kept open, with each row group's vector id range (from the footer's statistics), so
    that reading a few ids reads the groups that hold them and nothing else. Falls back to reading every group
    when the file is not sorted by vector id (written before it was)."""

    def __init__(self, path: Path) -> None:
        self.file = pq.ParquetFile(path, page_checksum_verification=True)
        md = self.file.metadata
        col = self.file.schema_arrow.get_field_index("vector_id")
        lo, hi = [], []
        for g in range(md.num_row_groups):
            st = md.row_group(g).column(col).statistics
            if st is None or not st.has_min_max:
                lo, hi = [], []
                break
            lo.append(st.min)
            hi.append(st.max)
        self.lo, self.hi = np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)
        self.sorted = len(lo) == md.num_row_groups and bool(np.all(self.lo[1:] > self.hi[:-1]))

    def read(self, ids: np.ndarray, columns: list[str]) -> pa.Table:
        import pyarrow.compute as pc

        if self.sorted:
            g = np.searchsorted(self.hi, ids)  # the first group whose max is >= the id
            inside = (g < len(self.hi)) & (ids >= self.lo[np.minimum(g, len(self.lo) - 1)])
            groups = sorted({int(x) for x in g[inside]})
            if not groups:
                return self.file.schema_arrow.empty_table().select(columns)
            t = self.file.read_row_groups(groups, columns=columns)
        else:
            t = self.file.read(columns=columns)
        return t.filter(pc.is_in(t["vector_id"], pa.array(ids)))


def _write_parquet(table: pa.Table, path: Path, generation: int | None = None, row_group: int | None = None) -> None:
    if generation is not None:
        meta = dict(table.schema.metadata or {})
        meta[_GEN_KEY] = str(generation).encode()
        table = table.replace_schema_metadata(meta)
    # page checksums: a byte flipped on disk is found when the page is read (`read_verified`), not decoded as a
    # vector that is slightly wrong
    atomic_write_with(path, lambda tmp: pq.write_table(table, tmp, compression="zstd", row_group_size=row_group,
                                                       write_page_checksum=True))  # fmt: skip


def _manifest_core(manifest: dict) -> bytes:
    keys = ("format_version", "head", "dim", "weights_sha256", "params", "index_factory", "metric", "created")
    return json.dumps({k: manifest.get(k) for k in keys}).encode()


def supersede(tables: list[pa.Table], paths_of: list[set[str]], columns: list[str] | None) -> pa.Table:
    """Concatenate tables (oldest first); rows of a path that a later table names are dropped.

    `paths_of[i]` holds every path table `i + 1` names (faces and rejects alike).
    """
    out = []
    for i, t in enumerate(tables):
        later: set[str] = set().union(*paths_of[i:]) if i < len(paths_of) else set()
        if later and t.num_rows:
            t = t.filter(pc.invert(pc.is_in(t["path"], pa.array(sorted(later), pa.string()))))
        out.append(t.select(columns) if columns else t)
    return pa.concat_tables(out, promote_options="default")


def dedupe_ids(faces: pa.Table, next_id: int) -> tuple[pa.Table, int, int]:
    """Give every face a unique vector id: `(faces, ids changed, next free id)`. The first keeps its id."""
    col = faces["vector_id"]
    ids = np.zeros(0, np.int64)
    if len(col):
        ids = np.asarray(pc.fill_null(col, -1).to_numpy(zero_copy_only=False), np.int64).copy()
    nxt = max(int(next_id), int(ids.max()) + 1 if len(ids) else 0)
    seen: set[int] = set()
    changed = 0
    for k, v in enumerate(ids.tolist()):
        if v < 0 or v in seen:
            ids[k] = nxt
            nxt += 1
            changed += 1
        seen.add(int(ids[k]))
    if changed:
        faces = faces.set_column(faces.schema.get_field_index("vector_id"), "vector_id", pa.array(ids, pa.int64()))
    return faces, changed, nxt


class FaceStore:
    """One index folder. Use `FaceStore.open(path)` to read, `FaceStore.writer(...)` to add to it."""

    def __init__(self, root: Path, manifest: dict, writer: bool = False) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self._is_writer = writer

    # ------------------------------------------------------------------ opening
    @property
    def head(self) -> str:
        return str(self.manifest["head"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @staticmethod
    def exists(root: Path) -> bool:
        return (Path(root) / MANIFEST).exists()

    @staticmethod
    def looks_like_index(root: Path) -> bool:
        """Data files of an index are here (with or without a manifest)."""
        root = Path(root)
        if any((root / n).exists() for n in (MANIFEST, JOURNAL, *_DATA_FILES)):
            return True
        parts = root / PARTS
        return parts.is_dir() and any(PART_RE.match(f.name) for f in parts.iterdir())

    @classmethod
    def open(cls, root: str | Path) -> FaceStore:
        """Open an existing index for reading (replaying a killed run's journal if no writer is active).

        Damage found without reading the data (a lost manifest, a data file missing or of another size than
        the manifest recorded) raises IndexCorruptError; `check()` looks deeper.
        """
        root = Path(root)
        if not cls.exists(root):
            if cls.looks_like_index(root):
                if (root / JOURNAL).exists():
                    with file_lock(root / WRITER_LOCK, blocking=False) as got:
                        if got:
                            cls._recover(root)
                if not cls.exists(root):
                    raise IndexCorruptError(
                        f"index {root} has lost its {MANIFEST}: run `lookalike repair {root}` to rebuild it from "
                        "the faces that survive"
                    )
            else:
                raise IndexNotFoundError(
                    f"no index at {root}: build one with `lookalike index PHOTOS --name NAME` (or --out {root})"
                )
        if (root / JOURNAL).exists():
            with file_lock(root / WRITER_LOCK, blocking=False) as got:
                if got:
                    cls._recover(root)
        with file_lock(root / STATE_LOCK, shared=True):  # the manifest and the files it names, as one
            store = cls(root, cls._read_manifest(root))
            store._check_files()
        return store

    @staticmethod
    def _read_manifest(root: Path) -> dict:
        try:
            m = json.loads((root / MANIFEST).read_text())
            if not isinstance(m, dict):
                raise ValueError("not a JSON object")
            for key in ("head", "dim", "generation", "next_id", "pending", "counts"):
                if key not in m:
                    raise ValueError(f"no {key!r}")
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise IndexCorruptError(
                f"cannot read {root / MANIFEST} ({' '.join(str(e).split())[:120]}): run `lookalike repair {root}`"
            ) from None
        if m.get("format_version") != FORMAT_VERSION:
            raise LookalikeError(
                f"{root} has index format {m.get('format_version')}, this lookalike reads {FORMAT_VERSION}"
            )
        return m

    def _damage(self, what: str) -> IndexCorruptError:
        return IndexCorruptError(f"index {self.root}: {what}: run `lookalike repair {self.root}`")

    def _check_files(self) -> None:
        """Cheap checks against the manifest: every file it relies on is there, at the size it recorded."""
        m = self.manifest
        sizes = m.get("files") or {}
        for name in _DATA_FILES:
            path = self.root / name
            if name in sizes:
                if not path.exists():
                    raise self._damage(f"{name} is missing")
                if path.stat().st_size != sizes[name]:
                    raise self._damage(
                        f"{name} is {path.stat().st_size:,} bytes, the index wrote {sizes[name]:,} (truncated or "
                        "overwritten)"
                    )
            elif int(m.get("generation", 0)) > 0 and name != REJECTS and not path.exists():
                raise self._damage(f"{name} is missing")
        for part in m.get("pending", []):
            for kind in ("faces", "rejects"):
                if not (self.root / PARTS / f"{part}.{kind}.parquet").exists():
                    raise self._damage(f"committed part {PARTS}/{part}.{kind}.parquet is missing")
        if (self.root / INDEX).exists():  # the engine writes IndexIDMap2 only: its 4-byte tag opens the file
            with open(self.root / INDEX, "rb") as fh:
                if fh.read(4) != b"IxM2":
                    raise self._damage(f"{INDEX} is not a FAISS id-mapped index (zeroed or overwritten)")
        for name in (FACES, REJECTS):  # footers only (a few KB): a zeroed or junk file of the right size
            path = self.root / name
            if path.exists():
                try:
                    gen = _parquet_generation(path, strict=True)
                except (OSError, pa.ArrowInvalid, ValueError) as e:
                    raise self._damage(f"{name} cannot be read ({' '.join(str(e).split())[:100]})") from None
                if gen is not None and gen != int(m.get("generation", 0)):
                    raise self._damage(f"{name} is of generation {gen}, the manifest of {m.get('generation')}")

    def check(self, deep: bool | None = None) -> list[str]:
        """A deeper look (every file's footer, the FAISS index; with `deep`, every data page against its checksum):
        one line per problem, [] when healthy. deep None: when the Parquet files are under `DEEP_CHECK_BYTES`."""
        problems: list[str] = []
        with self.snapshot():
            try:
                self._check_files()
            except IndexCorruptError as e:
                return [str(e)]
            gen = int(self.manifest["generation"])
            for name in (FACES, REJECTS):
                path = self.root / name
                if not path.exists():
                    continue
                try:
                    meta = pq.read_metadata(path)
                    file_gen = _parquet_generation(path)
                except (OSError, pa.ArrowInvalid, ValueError) as e:
                    problems.append(str(self._damage(f"{name} cannot be read ({' '.join(str(e).split())[:100]})")))
                    continue
                if file_gen is not None and file_gen != gen:
                    problems.append(str(self._damage(f"{name} is of generation {file_gen}, the manifest of {gen}")))
                want = self.manifest["counts"].get("faces" if name == FACES else "rejects")
                if not self.manifest["pending"] and want is not None and meta.num_rows != want:
                    problems.append(str(self._damage(f"{name} holds {meta.num_rows} rows, the manifest {want}")))
            for part in self.manifest["pending"]:
                for kind in ("faces", "rejects"):
                    try:
                        pq.read_metadata(self.root / PARTS / f"{part}.{kind}.parquet")
                    except (OSError, pa.ArrowInvalid) as e:
                        why = " ".join(str(e).split())[:80]
                        problems.append(str(self._damage(f"part {part}.{kind} cannot be read ({why})")))
            if deep is None:
                deep = sum(self._data_files_size()) <= DEEP_CHECK_BYTES
            if deep and not problems:
                problems += self._read_every_page()
            if (self.root / INDEX).exists():
                try:
                    self._read_faiss()
                except IndexCorruptError as e:
                    problems.append(str(e))
        return problems

    def _parquet_files(self) -> list[tuple[str, Path]]:
        files = [(n, self.root / n) for n in (FACES, REJECTS) if (self.root / n).exists()]
        files += [(f"part {p}.{k}", self.root / PARTS / f"{p}.{k}.parquet") for p in self.manifest["pending"]
                  for k in ("faces", "rejects")]  # fmt: skip
        return files

    def _data_files_size(self) -> list[int]:
        return [p.stat().st_size for _, p in self._parquet_files() if p.exists()]

    def _read_every_page(self) -> list[str]:
        """Every page of every Parquet file decoded and held against its checksum (files written before checksums
        were: decoded only)."""
        problems = []
        for name, path in self._parquet_files():
            try:
                f = pq.ParquetFile(path, page_checksum_verification=True)
                for g in range(f.metadata.num_row_groups):
                    f.read_row_group(g)
            except (OSError, pa.ArrowInvalid, ValueError) as e:
                why = " ".join(str(e).split())[:100]
                problems.append(str(self._damage(f"{name} holds a damaged page ({why})")))
        return problems

    @staticmethod
    def check_target(root: str | Path) -> None:
        """Refuse a folder that a new index must not be made in, and an index another run is writing.

        Called by the CLI before any model loads; `writer` checks the same again under its lock.
        """
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise LookalikeError(f"{root} is a file, not an index folder")
        if root.is_dir() and not FaceStore.exists(root):
            FaceStore._refuse_foreign(root)
        if (root / WRITER_LOCK).exists():
            with file_lock(root / WRITER_LOCK, blocking=False) as got:
                if not got:
                    raise LookalikeError(f"another `lookalike index` run is writing {root}; wait for it to finish")

    @staticmethod
    def _refuse_foreign(root: Path) -> None:
        if FaceStore.looks_like_index(root):
            raise IndexCorruptError(
                f"index {root} has lost its {MANIFEST}: run `lookalike repair {root}` to rebuild it from the faces "
                "that survive"
            )
        others = sorted(e.name for e in root.iterdir() if e.name not in _LOCKS and e.name != PARTS)
        if others or any((root / PARTS).iterdir() if (root / PARTS).is_dir() else ()):
            shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
            raise LookalikeError(
                f"{root} is not empty ({shown}) and holds no lookalike index: give --out a new or empty folder"
            )

    @classmethod
    @contextlib.contextmanager
    def writer(cls, root: str | Path, head: str, dim: int, weights_sha256: str, params: dict) -> Iterator[FaceStore]:
        """Open (or create) an index for adding faces; holds the writer lock for the whole run.

        Refuses an existing index built by another head or other weights (HeadMismatchError), a damaged one
        (IndexCorruptError), and a folder with other files in it.
        """
        root = Path(root)
        if root.is_dir() and not cls.exists(root) and not (root / JOURNAL).exists():
            cls._refuse_foreign(root)
        root.mkdir(parents=True, exist_ok=True)
        with file_lock(root / WRITER_LOCK, blocking=False) as got:
            if not got:
                raise LookalikeError(f"another `lookalike index` run is writing {root}; wait for it to finish")
            if cls.exists(root) or (root / JOURNAL).exists():
                cls._recover(root)
                store = cls(root, cls._read_manifest(root), writer=True)
                store._check_files()
                store.check_head(head, weights_sha256, params.get("head_preprocess"))
                store.check_detector(params)
            else:
                cls._refuse_foreign(root)
                now = now_utc().isoformat()
                manifest = {
                    "format_version": FORMAT_VERSION,
                    "head": head,
                    "dim": dim,
                    "weights_sha256": weights_sha256,
                    "params": params,
                    "index_factory": params.get("index_factory", "Flat"),
                    "metric": "inner_product",
                    "generation": 0,
                    "next_id": 0,
                    "pending": [],
                    "counts": {"faces": 0, "files": 0, "rejects": 0},
                    "created": now,
                    "updated": now,
                }
                atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=2))
                store = cls(root, manifest, writer=True)
            (root / PARTS).mkdir(exist_ok=True)
            yield store

    def check_head(self, head: str, weights_sha256: str | None = None, preprocess: str | None = None) -> None:
        """A one-line error when this index was built by another head (or other weights of it, or another
        preprocessing version of it: the same weights then give other vectors)."""
        if head.startswith("fused:"):  # a fused head as the manifest records it (`fused:a*1+b` is `fused:a+b`)
            from lookalike.heads.fused import canonical, parse

            head = canonical(parse(head))
        if head != self.head:
            raise HeadMismatchError(
                f"index {self.root} was built with head {self.head!r}, not {head!r}: use --head {self.head} "
                f"or build a new index with --head {head}"
            )
        if weights_sha256 and weights_sha256 != self.manifest.get("weights_sha256"):
            raise HeadMismatchError(
                f"index {self.root} was built with other {head!r} weights (sha256 "
                f"{str(self.manifest.get('weights_sha256'))[:12]}..., now {weights_sha256[:12]}...): "
                f"build a new index (`lookalike index PHOTOS --out NEW_FOLDER --head {head}`)"
            )
        was = str(self.manifest.get("params", {}).get("head_preprocess", "1"))
        if preprocess is not None and str(preprocess) != was:
            raise HeadMismatchError(
                f"index {self.root} was built with {head!r} preprocessing version {was}, this lookalike uses "
                f"version {preprocess} (other vectors from the same weights): build a new index "
                f"(`lookalike index PHOTOS --out NEW_FOLDER --head {head}`)"
            )

    def check_detector(self, params: dict) -> None:
        """A one-line error when faces would be added by another detector than the index's own."""
        from lookalike.faces.detect import LEGACY_DETECTOR, detector_spec  # knows earlier versions' names

        was = detector_spec(str(self.manifest.get("params", {}).get("detector", LEGACY_DETECTOR))).name
        now = detector_spec(str(params.get("detector", was))).name
        if now != was:
            raise HeadMismatchError(
                f"index {self.root} was built with detector {was!r}: use --detector {was} or a new index"
            )

    @classmethod
    def _recover(cls, root: Path) -> None:
        """Replay or discard what a killed writer left. Caller holds the writer lock.

        Deletes only names the engine makes: parts the manifest does not name, its own temp files, and the
        finalize files a journal names. Anything else in the folder is the user's and stays.
        """
        with file_lock(root / STATE_LOCK):
            journal_path = root / JOURNAL
            manifest = None
            if journal_path.exists():
                try:
                    journal = json.loads(journal_path.read_text())
                    renames = [(str(t), str(f)) for t, f in journal["renames"]]
                    jgen = int(journal["generation"])
                    jman = journal["manifest"]
                except (OSError, ValueError, KeyError, TypeError):
                    journal, renames, jgen, jman = None, [], -1, None
                current = None
                if cls.exists(root):
                    try:
                        current = cls._read_manifest(root)
                    except LookalikeError:
                        current = None
                cur_gen = int(current["generation"]) if current else jgen - 1
                if journal is not None and jgen == cur_gen + 1:
                    for tmp, final in renames:
                        if _FINAL_RE.match(tmp) and final in _DATA_FILES and (root / tmp).exists():
                            os.replace(root / tmp, root / final)
                    atomic_write_text(root / MANIFEST, json.dumps(jman, indent=2))
                for tmp, _ in renames:
                    if _FINAL_RE.match(tmp) and (root / tmp).exists():
                        (root / tmp).unlink()
                journal_path.unlink()
            if not cls.exists(root):
                return
            manifest = cls._read_manifest(root)
            keep = {f"{p}.{kind}.parquet" for p in manifest["pending"] for kind in ("faces", "rejects")}
            parts = root / PARTS
            if parts.is_dir():
                for f in parts.iterdir():
                    if (PART_RE.match(f.name) and f.name not in keep) or _PART_TMP_RE.match(f.name):
                        f.unlink()
            for f in root.iterdir():
                if (_ROOT_TMP_RE.match(f.name) or _FINAL_RE.match(f.name)) and f.is_file():
                    f.unlink()

    # ------------------------------------------------------------------ reading
    @contextlib.contextmanager
    def snapshot(self) -> Iterator[FaceStore]:
        """Hold one generation still while several reads are made (the writer waits to swap files)."""
        with file_lock(self.root / STATE_LOCK, shared=True):
            self._refresh()
            yield self

    def _refresh(self) -> None:
        """A reader takes the manifest in force now (caller holds `.state.lock`); a writer keeps its own."""
        if not self._is_writer:
            self.manifest = self._read_manifest(self.root)

    def _read_part(self, part: str, kind: str, columns: list[str] | None = None) -> pa.Table:
        path = self.root / PARTS / f"{part}.{kind}.parquet"
        try:
            return pq.read_table(path, columns=columns, page_checksum_verification=True)
        except (OSError, pa.ArrowInvalid) as e:
            raise self._damage(f"part {path.name} cannot be read ({' '.join(str(e).split())[:80]})") from None

    def _pending_tables(self, kind: str) -> list[pa.Table]:
        return [self._read_part(p, kind) for p in self.manifest["pending"]]

    def _base_table(self, name: str, schema: pa.Schema, columns: list[str] | None) -> pa.Table:
        path = self.root / name
        if not path.exists():
            if name == FACES and self.manifest.get("generation", 0) > 0 and self.manifest["counts"].get("faces"):
                raise self._damage(f"{name} is missing")
            t = schema.empty_table()
            return t.select(columns) if columns else t
        try:
            return pq.read_table(path, columns=columns, page_checksum_verification=True)
        except (OSError, pa.ArrowInvalid) as e:
            raise self._damage(f"{name} cannot be read ({' '.join(str(e).split())[:100]})") from None

    def _merged(self, kind: str, columns: list[str] | None = None) -> pa.Table:
        """Base file + pending parts, where a path seen in a later part replaces its earlier rows."""
        name, schema = (FACES, faces_schema(self.dim)) if kind == "faces" else (REJECTS, REJECTS_SCHEMA)
        base = self._base_table(name, schema, columns)
        if not self.manifest["pending"]:
            return base
        cols = columns if columns is None or "path" in columns else [*columns, "path"]
        tables = [base if cols == columns else self._base_table(name, schema, cols)]
        seen: list[set[str]] = []
        for p in self.manifest["pending"]:
            paths: set[str] = set()
            for k in ("faces", "rejects"):
                paths.update(self._read_part(p, k, ["path"])["path"].to_pylist())
            seen.append(paths)
            tables.append(self._read_part(p, kind, cols))
        return supersede(tables, seen, columns)

    def faces(self, columns: list[str] | None = None) -> pa.Table:
        """Every indexed face (rows of `faces.parquet` plus a killed run's committed parts)."""
        with file_lock(self.root / STATE_LOCK, shared=True):
            self._refresh()
            return self._merged("faces", columns)

    def faces_by_id(self, ids, columns: list[str]) -> pa.Table:
        """The rows of the faces with vector ids `ids` (in any order), reading only the row groups of the main
        file whose id range holds them (when no committed part is pending; else from the merged rows). The file
        stays open between calls (its footer read once); a later generation opens the new one."""
        import pyarrow.compute as pc

        wanted = np.unique(np.asarray([int(i) for i in ids], dtype=np.int64))
        cols = columns if "vector_id" in columns else ["vector_id", *columns]
        with file_lock(self.root / STATE_LOCK, shared=True):
            self._refresh()
            if self.manifest["pending"] or not (self.root / FACES).exists():
                t = self._merged("faces", cols)
                return t.filter(pc.is_in(t["vector_id"], pa.array(wanted)))
            try:
                gen = int(self.manifest["generation"])
                if getattr(self, "_faces_file", (None, None))[0] != gen:
                    self._faces_file = (gen, _SortedFaces(self.root / FACES))
                return self._faces_file[1].read(wanted, cols)
            except (OSError, pa.ArrowInvalid) as e:
                raise self._damage(f"{FACES} cannot be read ({' '.join(str(e).split())[:100]})") from None

    def rejects(self) -> pa.Table:
        """Every rejected file with its reason."""
        with file_lock(self.root / STATE_LOCK, shared=True):
            self._refresh()
            return self._merged("rejects")

    def known_files(self) -> dict[str, tuple[int, int, str | None]]:
        """path -> (size, mtime_ns, sha256) of every file already processed (indexed or rejected)."""
        known: dict[str, tuple[int, int, str | None]] = {}
        with file_lock(self.root / STATE_LOCK, shared=True):
            self._refresh()
            for kind in ("rejects", "faces"):
                t = self._merged(kind, ["path", "file_size", "mtime_ns", "sha256"])
                for p, s, m, h in zip(
                    *(t[c].to_pylist() for c in ("path", "file_size", "mtime_ns", "sha256")), strict=False
                ):
                    known[p] = (s, m, h)
        return known

    def _read_faiss(self, mmap: bool = False):
        """The FAISS file; `mmap` maps an approximate (IVF) index's lists from disk instead of reading them: a
        searcher of a large index holds only the pages its searches touch (measured: a 300k-face IVF-SQ8 index
        +129 MB read, +1 MB mapped). Never for writing: a mapped index takes no additions."""
        import faiss

        path = self.root / INDEX
        state = self.manifest.get("index_state") or {}
        flags = faiss.IO_FLAG_MMAP if mmap and "IVF" in str(state.get("factory", "")) else 0
        try:
            if path.stat().st_size == 0:
                raise RuntimeError("empty file")
            index = faiss.read_index(str(path), flags)
        except (RuntimeError, OSError, MemoryError) as e:
            raise self._damage(f"{INDEX} cannot be read ({' '.join(str(e).split())[:100]})") from None
        if index.d != self.dim:
            raise self._damage(f"{INDEX} holds {index.d}-d vectors, the index is {self.dim}-d")
        return index

    def load_index(self, mmap: bool = False):
        """The FAISS index (`IndexIDMap2` over inner product), checked against the faces it must hold; `mmap`:
        for searching only, an approximate index's lists stay on disk (`_read_faiss`)."""
        from lookalike.index.vector_index import build_index, set_search_param

        with file_lock(self.root / STATE_LOCK, shared=True):
            self._refresh()
            path = self.root / INDEX
            if path.exists() and not self.manifest["pending"]:
                index = self._read_faiss(mmap=mmap)
                if index.ntotal == self.manifest["counts"]["faces"]:
                    return index
            faces = self._merged("faces", ["vector_id", "embedding"])
        state = self.manifest.get("index_state") or {}
        index = build_index(
            vectors_of(faces, self.dim),
            faces["vector_id"].to_numpy(),
            state.get("factory") or self.manifest.get("index_factory", "Flat"),
        )
        tuning = state.get("tuning")
        if tuning and tuning.get("param") in ("nprobe", "efSearch"):
            set_search_param(index, tuning["param"], tuning["value"])
        return index

    # ------------------------------------------------------------------ writing
    def reserve_ids(self, n: int) -> np.ndarray:
        """`n` fresh int64 vector ids (made durable by the next `commit_part`)."""
        start = int(self.manifest["next_id"])
        self.manifest["next_id"] = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def _with_core(self, table: pa.Table) -> pa.Table:
        meta = dict(table.schema.metadata or {})
        meta[MANIFEST_KEY] = _manifest_core(self.manifest)
        return table.replace_schema_metadata(meta)

    def commit_part(self, faces: pa.Table, rejects: pa.Table) -> None:
        """Durably add a batch of faces and rejects (visible to readers as soon as this returns)."""
        part = f"{len(self.manifest['pending']):06d}-{self.manifest['next_id']}"
        faces = self._with_core(faces.cast(faces_schema(self.dim)))
        _write_parquet(faces, self.root / PARTS / f"{part}.faces.parquet")
        _write_parquet(self._with_core(rejects.cast(REJECTS_SCHEMA)), self.root / PARTS / f"{part}.rejects.parquet")
        manifest = dict(self.manifest, pending=[*self.manifest["pending"], part], updated=now_utc().isoformat())
        with file_lock(self.root / STATE_LOCK):
            atomic_write_text(self.root / MANIFEST, json.dumps(manifest, indent=2))
        self.manifest = manifest

    def commit_restamped(self, stamps: dict[str, tuple[int, int]]) -> None:
        """Files whose bytes are unchanged under a new size/mtime stamp: their rows again, newly stamped."""
        if not stamps:
            return
        keys = pa.array(sorted(stamps), pa.string())
        tables = []
        for kind in ("faces", "rejects"):
            t = self._merged(kind)
            t = t.filter(pc.is_in(t["path"], keys))
            paths = t["path"].to_pylist()
            t = t.set_column(t.schema.get_field_index("file_size"), "file_size",
                             pa.array([stamps[p][0] for p in paths], pa.int64()))  # fmt: skip
            t = t.set_column(t.schema.get_field_index("mtime_ns"), "mtime_ns",
                             pa.array([stamps[p][1] for p in paths], pa.int64()))  # fmt: skip
            tables.append(t)
        self.commit_part(*tables)

    def write_generation(self, faces: pa.Table, rejects: pa.Table, index, manifest: dict) -> None:
        """Write the three main files and the manifest as one generation, through the journal."""
        import faiss

        gen = int(manifest["generation"])
        tmp = {name: f"finalize-{gen}-{name}" for name in _DATA_FILES}
        faces = self._with_core(faces)
        rejects = self._with_core(rejects)
        if faces.num_rows and faces["vector_id"].null_count == 0:
            faces = faces.sort_by("vector_id")
        _write_parquet(faces, self.root / tmp[FACES], gen, FACES_ROW_GROUP if faces.num_rows > LARGE_INDEX else None)
        _write_parquet(rejects, self.root / tmp[REJECTS], gen)
        atomic_write_with(self.root / tmp[INDEX], lambda p: faiss.write_index(index, p))
        manifest["files"] = {n: (self.root / tmp[n]).stat().st_size for n in _DATA_FILES}
        journal = {"generation": gen, "renames": [[tmp[n], n] for n in (INDEX, REJECTS, FACES)], "manifest": manifest}
        atomic_write_text(self.root / JOURNAL, json.dumps(journal))
        with file_lock(self.root / STATE_LOCK):
            for t, final in journal["renames"]:
                os.replace(self.root / t, self.root / final)
            atomic_write_text(self.root / MANIFEST, json.dumps(manifest, indent=2))
            (self.root / JOURNAL).unlink()

    def finalize(self, drop_paths: set[str] | None = None) -> dict:
        """Fold pending parts into the main files, dropping the rows of `drop_paths`; returns the counts."""
        from lookalike.index.vector_index import active_description, update_index

        drop = sorted(drop_paths or ())
        if not self.manifest["pending"] and not drop and (self.root / INDEX).exists():
            return dict(self.manifest["counts"])
        faces = self._merged("faces")
        rejects = self._merged("rejects")
        if drop:
            mask = pa.array(drop, pa.string())
            faces = faces.filter(pc.invert(pc.is_in(faces["path"], mask)))
            rejects = rejects.filter(pc.invert(pc.is_in(rejects["path"], mask)))
        gen = int(self.manifest["generation"]) + 1
        old_index = self._read_faiss() if (self.root / INDEX).exists() else None
        factory = self.manifest.get("index_factory", "Flat")
        vectors = vectors_of(faces, self.dim)
        index, state = update_index(
            old_index, vectors, faces["vector_id"].to_numpy(), factory, self.manifest.get("index_state")
        )
        counts = {
            "faces": faces.num_rows,
            "files": len(pc.unique(faces["path"])) if faces.num_rows else 0,
            "rejects": rejects.num_rows,
        }
        manifest = dict(
            self.manifest,
            generation=gen,
            pending=[],
            counts=counts,
            index_active=active_description(index, factory, faces.num_rows, state),
            index_state=state,
            updated=now_utc().isoformat(),
        )
        self.write_generation(faces, rejects, index, manifest)
        for p in self.manifest["pending"]:
            for k in ("faces", "rejects"):
                (self.root / PARTS / f"{p}.{k}.parquet").unlink(missing_ok=True)
        self.manifest = manifest
        return counts
