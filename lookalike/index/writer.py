"""The single writer of an indexing run: the CLI's run and the Ray job hand it tables of faces and rejects; it
assigns vector ids, commits a part every `commit_every` files (what a crash can lose), restamps files whose
bytes did not change, and finalizes the index.
"""

from __future__ import annotations

import pyarrow as pa

from lookalike.faces.photos import Unchanged
from lookalike.index.store import REJECTS_SCHEMA, FaceStore, faces_schema


class IndexWriter:
    """Buffers finished rows of one run and commits them to `store` (a `FaceStore.writer` session)."""

    def __init__(self, store: FaceStore, dim: int, commit_every: int = 256) -> None:
        self.store = store
        self.dim = dim
        self.commit_every = max(1, int(commit_every))
        self._faces: list[pa.Table] = []
        self._rejects: list[pa.Table] = []
        self._files = 0
        self._touched: dict[str, tuple[int, int]] = {}
        self.faces_added = 0
        self.rejects_added = 0

    def add(self, faces: pa.Table | None, rejects: pa.Table | None, files: int = 0) -> None:
        """Rows of `files` files that are done; committed once `commit_every` files are pending."""
        if faces is not None and faces.num_rows:
            self._faces.append(faces)
            self.faces_added += faces.num_rows
        if rejects is not None and rejects.num_rows:
            self._rejects.append(rejects)
            self.rejects_added += rejects.num_rows
        self._files += files
        if self._files >= self.commit_every:
            self.commit()

    def touched(self, items: list[Unchanged]) -> None:
        """Files with the bytes already indexed under a new mtime: their rows get the new size and mtime."""
        self._touched.update({u.stat.path: (u.stat.size, u.stat.mtime_ns) for u in items})

    @property
    def touched_files(self) -> int:
        return len(self._touched)

    def commit(self) -> None:
        """Write what is pending as one part (ids reserved first), if anything is."""
        if not self._faces and not self._rejects:
            self._files = 0
            return
        faces = pa.concat_tables(self._faces) if self._faces else faces_schema(self.dim).empty_table()
        rejects = pa.concat_tables(self._rejects) if self._rejects else REJECTS_SCHEMA.empty_table()
        ids = self.store.reserve_ids(faces.num_rows)
        faces = faces.set_column(0, "vector_id", pa.array(ids, pa.int64()))
        self.store.commit_part(faces, rejects)
        self._faces.clear()
        self._rejects.clear()
        self._files = 0

    def finish(self, drop: set[str] | None = None) -> dict:
        """Commit the rest, restamp touched files, drop the faces of `drop` paths, finalize: the index's counts."""
        self.commit()
        if self._touched:
            self.store.commit_restamped(self._touched)
        return self.store.finalize(drop or set())
