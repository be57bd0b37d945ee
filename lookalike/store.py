"""The index folder on disk: `manifest.json`, `faces.parquet`, `rejects.parquet`, `index.faiss`.

Crash safety. A run commits work in parts: `parts/NNNNNN.faces.parquet` + `parts/NNNNNN.rejects.parquet`,
each written to a temp name and renamed, then named in the manifest (itself replaced atomically). Only
parts the manifest names exist as far as any reader is concerned. `finalize` folds the pending parts into
the three main files: it writes them all to temp names, writes a journal (`finalize.json`) naming them,
renames them into place, commits the manifest, then drops the journal and the parts. Opening the folder
for writing replays or discards whatever a killed run left, so a run killed at any instant and started
again ends with the same index as an uninterrupted one.

Concurrency: one writer at a time (`.writer.lock`); readers take `.state.lock` shared while they load,
and the writer takes it exclusively while it swaps files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .atomic import atomic_write_text, atomic_write_with
from .errors import HeadMismatchError, IndexNotFoundError, LookalikeError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FACES = "faces.parquet"
REJECTS = "rejects.parquet"
INDEX = "index.faiss"
JOURNAL = "finalize.json"
PARTS = "parts"
_GEN_KEY = b"lookalike_generation"


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


def resolve_index_path(name_or_path: str | Path, home: Path | None = None) -> Path:
    """An index folder from a path or a name under the index home (an existing index wins either way)."""
    from . import config

    p = Path(name_or_path)
    named = (home or config.index_home()) / str(name_or_path)
    if (p / MANIFEST).exists():
        return p
    if (named / MANIFEST).exists():
        return named
    return p if (os.sep in str(name_or_path) or str(name_or_path).startswith(".")) else named


@contextlib.contextmanager
def _flock(path: Path, mode: int, blocking: bool = True) -> Iterator[bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, mode | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _parquet_generation(path: Path) -> int | None:
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    return int(meta[_GEN_KEY]) if _GEN_KEY in meta else None


def _write_parquet(table: pa.Table, path: Path, generation: int | None = None) -> None:
    if generation is not None:
        meta = dict(table.schema.metadata or {})
        meta[_GEN_KEY] = str(generation).encode()
        table = table.replace_schema_metadata(meta)
    atomic_write_with(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


class FaceStore:
    """One index folder. Use `FaceStore.open(path)` to read, `FaceStore.writer(...)` to add to it."""

    def __init__(self, root: Path, manifest: dict) -> None:
        self.root = Path(root)
        self.manifest = manifest

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

    @classmethod
    def open(cls, root: str | Path) -> FaceStore:
        """Open an existing index for reading (replaying a killed run's journal if no writer is active)."""
        root = Path(root)
        if not cls.exists(root):
            raise IndexNotFoundError(
                f"no index at {root}: build one with `lookalike index PHOTOS --name NAME` (or --out {root})"
            )
        if (root / JOURNAL).exists():
            with _flock(root / ".writer.lock", fcntl.LOCK_EX, blocking=False) as got:
                if got:
                    cls._recover(root)
        return cls(root, cls._read_manifest(root))

    @staticmethod
    def _read_manifest(root: Path) -> dict:
        try:
            m = json.loads((root / MANIFEST).read_text())
        except (OSError, ValueError) as e:
            raise LookalikeError(f"cannot read {root / MANIFEST}: {e}") from None
        if m.get("format_version") != FORMAT_VERSION:
            raise LookalikeError(
                f"{root} has index format {m.get('format_version')}, this lookalike reads {FORMAT_VERSION}"
            )
        return m

    @classmethod
    @contextlib.contextmanager
    def writer(cls, root: str | Path, head: str, dim: int, weights_sha256: str, params: dict) -> Iterator[FaceStore]:
        """Open (or create) an index for adding faces; holds the writer lock for the whole run.

        Refuses an existing index built by another head or other weights (HeadMismatchError).
        """
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        (root / PARTS).mkdir(exist_ok=True)
        with _flock(root / ".writer.lock", fcntl.LOCK_EX, blocking=False) as got:
            if not got:
                raise LookalikeError(f"another `lookalike index` run is writing {root}; wait for it to finish")
            if cls.exists(root):
                cls._recover(root)
                store = cls(root, cls._read_manifest(root))
                store.check_head(head, weights_sha256)
            else:
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
                store = cls(root, manifest)
            yield store

    def check_head(self, head: str, weights_sha256: str | None = None) -> None:
        """A one-line error when this index was built by another head (or other weights of it)."""
        if head != self.head:
            raise HeadMismatchError(
                f"index {self.root} was built with head {self.head!r}, not {head!r}: use --head {self.head} "
                f"or build a new index with --head {head}"
            )
        if weights_sha256 and weights_sha256 != self.manifest.get("weights_sha256"):
            raise HeadMismatchError(
                f"index {self.root} was built with other {head!r} weights (sha256 "
                f"{str(self.manifest.get('weights_sha256'))[:12]}..., now {weights_sha256[:12]}...): "
                f"rebuild it with `lookalike index ... --out {self.root} --rebuild`"
            )

    @classmethod
    def _recover(cls, root: Path) -> None:
        """Replay or discard what a killed writer left. Caller holds the writer lock."""
        with _flock(root / ".state.lock", fcntl.LOCK_EX):
            manifest = cls._read_manifest(root)
            journal_path = root / JOURNAL
            if journal_path.exists():
                journal = json.loads(journal_path.read_text())
                if journal["generation"] == manifest["generation"] + 1:
                    for tmp, final in journal["renames"]:
                        if (root / tmp).exists():
                            os.replace(root / tmp, root / final)
                    atomic_write_text(root / MANIFEST, json.dumps(journal["manifest"], indent=2))
                    manifest = journal["manifest"]
                journal_path.unlink()
            keep = {f"{p}.{kind}.parquet" for p in manifest["pending"] for kind in ("faces", "rejects")}
            parts = root / PARTS
            if parts.exists():
                for f in parts.iterdir():
                    if f.name not in keep:
                        f.unlink()
            for f in root.iterdir():
                if f.name.startswith(".") and f.name.endswith(".tmp"):
                    f.unlink()
                elif f.name.startswith("finalize-") and f.is_file():
                    f.unlink()

    # ------------------------------------------------------------------ reading
    def _pending_tables(self, kind: str) -> list[pa.Table]:
        return [pq.read_table(self.root / PARTS / f"{p}.{kind}.parquet") for p in self.manifest["pending"]]

    def _base_table(self, name: str, schema: pa.Schema, columns: list[str] | None) -> pa.Table:
        path = self.root / name
        if not path.exists():
            t = schema.empty_table()
            return t.select(columns) if columns else t
        return pq.read_table(path, columns=columns)

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
                paths.update(
                    pq.read_table(self.root / PARTS / f"{p}.{k}.parquet", columns=["path"])["path"].to_pylist()
                )
            seen.append(paths)
            tables.append(pq.read_table(self.root / PARTS / f"{p}.{kind}.parquet", columns=cols))
        out = []
        for i, t in enumerate(tables):
            later: set[str] = set().union(*seen[i:]) if i < len(seen) else set()
            if later and t.num_rows:
                t = t.filter(pc.invert(pc.is_in(t["path"], pa.array(sorted(later), pa.string()))))
            out.append(t.select(columns) if columns else t)
        return pa.concat_tables(out, promote_options="default")

    def faces(self, columns: list[str] | None = None) -> pa.Table:
        """Every indexed face (rows of `faces.parquet` plus a killed run's committed parts)."""
        with _flock(self.root / ".state.lock", fcntl.LOCK_SH):
            return self._merged("faces", columns)

    def rejects(self) -> pa.Table:
        """Every rejected file with its reason."""
        with _flock(self.root / ".state.lock", fcntl.LOCK_SH):
            return self._merged("rejects")

    def known_files(self) -> dict[str, tuple[int, int, str | None]]:
        """path -> (size, mtime_ns, sha256) of every file already processed (indexed or rejected)."""
        known: dict[str, tuple[int, int, str | None]] = {}
        with _flock(self.root / ".state.lock", fcntl.LOCK_SH):
            for kind in ("rejects", "faces"):
                t = self._merged(kind, ["path", "file_size", "mtime_ns", "sha256"])
                for p, s, m, h in zip(
                    *(t[c].to_pylist() for c in ("path", "file_size", "mtime_ns", "sha256")), strict=False
                ):
                    known[p] = (s, m, h)
        return known

    def load_index(self):
        """The FAISS index (`IndexIDMap2` over inner product), checked against the faces it must hold."""
        import faiss

        from .vector_index import build_index

        with _flock(self.root / ".state.lock", fcntl.LOCK_SH):
            path = self.root / INDEX
            if path.exists() and not self.manifest["pending"]:
                index = faiss.read_index(str(path))
                if index.ntotal == self.manifest["counts"]["faces"] and index.d == self.dim:
                    return index
            faces = self._merged("faces", ["vector_id", "embedding"])
        return build_index(
            vectors_of(faces, self.dim),
            faces["vector_id"].to_numpy(),
            self.manifest.get("index_factory", "Flat"),
        )

    # ------------------------------------------------------------------ writing
    def reserve_ids(self, n: int) -> np.ndarray:
        """`n` fresh int64 vector ids (made durable by the next `commit_part`)."""
        start = int(self.manifest["next_id"])
        self.manifest["next_id"] = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def commit_part(self, faces: pa.Table, rejects: pa.Table) -> None:
        """Durably add a batch of faces and rejects (visible to readers as soon as this returns)."""
        part = f"{len(self.manifest['pending']):06d}-{self.manifest['next_id']}"
        _write_parquet(faces.cast(faces_schema(self.dim)), self.root / PARTS / f"{part}.faces.parquet")
        _write_parquet(rejects.cast(REJECTS_SCHEMA), self.root / PARTS / f"{part}.rejects.parquet")
        manifest = dict(self.manifest, pending=[*self.manifest["pending"], part], updated=now_utc().isoformat())
        with _flock(self.root / ".state.lock", fcntl.LOCK_EX):
            atomic_write_text(self.root / MANIFEST, json.dumps(manifest, indent=2))
        self.manifest = manifest

    def finalize(self, drop_paths: set[str] | None = None) -> dict:
        """Fold pending parts into the main files, dropping the rows of `drop_paths`; returns the counts."""
        from .vector_index import update_index

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
        old_index = None
        if (self.root / INDEX).exists():
            import faiss

            old_index = faiss.read_index(str(self.root / INDEX))
        index = update_index(
            old_index,
            vectors_of(faces, self.dim),
            faces["vector_id"].to_numpy(),
            self.manifest.get("index_factory", "Flat"),
        )
        counts = {
            "faces": faces.num_rows,
            "files": len(pc.unique(faces["path"])) if faces.num_rows else 0,
            "rejects": rejects.num_rows,
        }
        manifest = dict(self.manifest, generation=gen, pending=[], counts=counts, updated=now_utc().isoformat())
        import faiss

        tmp = {name: f"finalize-{gen}-{name}" for name in (FACES, REJECTS, INDEX)}
        _write_parquet(faces, self.root / tmp[FACES], gen)
        _write_parquet(rejects, self.root / tmp[REJECTS], gen)
        atomic_write_with(self.root / tmp[INDEX], lambda p: faiss.write_index(index, p))
        journal = {
            "generation": gen,
            "renames": [[tmp[n], n] for n in (INDEX, REJECTS, FACES)],
            "manifest": manifest,
        }
        atomic_write_text(self.root / JOURNAL, json.dumps(journal))
        with _flock(self.root / ".state.lock", fcntl.LOCK_EX):
            for t, final in journal["renames"]:
                os.replace(self.root / t, self.root / final)
            atomic_write_text(self.root / MANIFEST, json.dumps(manifest, indent=2))
            (self.root / JOURNAL).unlink()
        for p in self.manifest["pending"]:
            for k in ("faces", "rejects"):
                (self.root / PARTS / f"{p}.{k}.parquet").unlink(missing_ok=True)
        self.manifest = manifest
        return counts
