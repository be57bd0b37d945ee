"""`people.parquet` in an index folder: the person of each face (`vector_id`, `face_id`, `person`, `labelled`), as
`lookalike cluster` found them, stamped with the index generation it was made for."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lookalike.atomic import atomic_write_with
from lookalike.index.layout import GENERATION_KEY, OLD_PEOPLE_GENERATION_KEY, PEOPLE, STATE_LOCK
from lookalike.locks import file_lock


def write_people(root: Path, table: pa.Table, generation: int) -> Path:
    """Write the people of the index at `root` (atomically), for index generation `generation`."""
    table = table.replace_schema_metadata({GENERATION_KEY: str(int(generation)).encode()})
    path = Path(root) / PEOPLE
    with file_lock(Path(root) / STATE_LOCK):  # as the writer swaps its files: a reader sees one or the other
        atomic_write_with(path, lambda tmp: pq.write_table(table, tmp))
    return path


def read_people(root: Path, generation: int | None = None) -> pa.Table | None:
    """`people.parquet` of an index, or None when absent, unreadable, or made for another generation than
    `generation` (the index changed since: `lookalike cluster` again)."""
    path = Path(root) / PEOPLE
    if not path.exists():
        return None
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid):
        return None
    meta = table.schema.metadata or {}
    made_for = int(meta.get(GENERATION_KEY, meta.get(OLD_PEOPLE_GENERATION_KEY, b"-1")))
    return table if generation is None or made_for == generation else None
