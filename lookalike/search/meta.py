"""What a searcher knows of each face besides its vector: path, sha256, identity, face id, box, by row (rows in
vector id order).

Up to `IN_MEMORY_UP_TO` faces the columns are loaded once (`MemoryMeta`); above, only the vector ids are, and the
rest of a face is read when an answer needs it (`ParquetMeta`: the main faces file is sorted by vector id in row
groups of 4,096, so a query's candidates touch a few groups, not the file): a one-off query of a large index opens
it faster and smaller, at some milliseconds per answer; a long-running server keeps everything in memory
(benchmarks/scale.md).
"""

from __future__ import annotations

import numpy as np

from lookalike.index.store import LARGE_INDEX

#: Faces whose metadata a searcher loads whole; above, it reads what answers need (the store writes such an index
#: in small row groups).
IN_MEMORY_UP_TO = LARGE_INDEX
COLUMNS = ("path", "sha256", "identity", "face_id", "box")


class MemoryMeta:
    """Every face's metadata in memory."""

    def __init__(self, store) -> None:
        meta = store.faces(["vector_id", *COLUMNS])
        order = np.argsort(meta["vector_id"].to_numpy())
        self.ids = meta["vector_id"].to_numpy()[order]
        self._cols = {c: np.asarray(meta[c].to_pylist(), dtype=object)[order] for c in COLUMNS}

    def rows(self, rows: np.ndarray) -> dict[int, dict]:
        """row -> {column: value} for `rows`."""
        return {int(r): {c: self._cols[c][r] for c in COLUMNS} for r in rows}

    def column(self, name: str) -> list:
        """One column for every row."""
        return list(self._cols[name])


class ParquetMeta:
    """Vector ids in memory; the rest read from the index's Parquet file when asked for."""

    def __init__(self, store) -> None:
        self.store = store
        self.ids = np.sort(store.faces(["vector_id"])["vector_id"].to_numpy())

    def rows(self, rows: np.ndarray) -> dict[int, dict]:
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return {}
        t = self.store.faces_by_id(self.ids[rows], list(COLUMNS)).to_pydict()
        by_id = {int(v): i for i, v in enumerate(t["vector_id"])}
        out = {}
        for r in rows:
            i = by_id.get(int(self.ids[r]))
            if i is not None:
                out[int(r)] = {c: t[c][i] for c in COLUMNS}
        return out

    def column(self, name: str) -> list:
        t = self.store.faces(["vector_id", name])
        order = np.argsort(t["vector_id"].to_numpy())
        values = t[name].to_pylist()
        return [values[i] for i in order]


def face_meta(store, mode: str = "auto"):
    """The metadata holder for `store`: "memory", "parquet" (read on demand), or "auto": in memory up to
    `IN_MEMORY_UP_TO` faces, else on demand."""
    if mode == "auto":
        n = int(store.manifest.get("counts", {}).get("faces", 0))
        mode = "parquet" if n > IN_MEMORY_UP_TO else "memory"
    return ParquetMeta(store) if mode == "parquet" else MemoryMeta(store)
