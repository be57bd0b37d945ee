"""Every name in an index folder, in one place: the files the store writes, the side files other rooms keep there
(written under the store's locks), the locks, and the key that stamps a file with the index generation it was
written for. Nothing else spells these names; `locate` finds an index by name or folder.

    manifest.json        what the index is (head, detector, thresholds, counts, generation)
    faces.parquet        one row per face (vector id, path, box, landmarks, identity, vector)
    rejects.parquet      one row per file that gave no face, and why
    index.faiss          the vectors, searchable
    parts/               committed batches not yet compacted into the three files above
    finalize.json        the journal of a compaction in progress (crash recovery replays it)
    removed.parquet      faces `lookalike dedup --remove` took out (`--restore` puts them back)
    people.parquet       `lookalike cluster`'s people, for one generation
    people_edits.json    the user's renames, merges, hidden people and moved faces
    metrics/             learnt metrics of `--rerank metric`
    maps/                cached feature maps of the metric benchmarks
    .writer.lock         held by the one writer
    .state.lock          held while the manifest and the files it names are read or swapped
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lookalike import config
from lookalike.errors import LookalikeError

MANIFEST = "manifest.json"
FACES = "faces.parquet"
REJECTS = "rejects.parquet"
INDEX = "index.faiss"
PARTS = "parts"
JOURNAL = "finalize.json"
REMOVED = "removed.parquet"
PEOPLE = "people.parquet"
PEOPLE_EDITS = "people_edits.json"
METRICS = "metrics"
MAPS = "maps"
WRITER_LOCK = ".writer.lock"
STATE_LOCK = ".state.lock"
LOCKS = (WRITER_LOCK, STATE_LOCK)

#: The Parquet metadata key holding the generation a file was written for (the store's files and people.parquet).
GENERATION_KEY = b"lookalike_generation"
#: The key people.parquet used before 0.2 (read, never written).
OLD_PEOPLE_GENERATION_KEY = b"lookalike.generation"
#: The manifest's identity, kept in every Parquet file for `repair`.
MANIFEST_KEY = b"lookalike_manifest"


def locate(name_or_path: str | Path | None = None) -> Path:
    """The index meant, the one way every verb finds it: a name or folder (`named_folder`), else the only index in
    the index home (or the old ./indexes); a one-line error naming what there is otherwise."""
    from lookalike.index.store import FaceStore

    if name_or_path:
        return named_folder(str(name_or_path))
    home = config.index_home()
    found = sorted(p for p in home.iterdir() if FaceStore.exists(p)) if home.is_dir() else []
    legacy = config.legacy_index_home()
    if not found and legacy.is_dir() and legacy != home:  # named indexes built before they moved
        found = sorted(p for p in legacy.iterdir() if FaceStore.exists(p))
        if len(found) == 1:
            legacy_notice(found[0], home / found[0].name)
    if len(found) == 1:
        return found[0]
    if not found:
        raise LookalikeError(f"no index in {home}: build one with `lookalike index PHOTOS --name NAME`")
    names = ", ".join(p.name for p in found)
    raise LookalikeError(f"several indexes in {home} ({names}): pick one with --index NAME")


def named_folder(name_or_path: str | Path, home: Path | None = None) -> Path:
    """An index folder from a path, a name under the index home, a name under `./indexes` (where named indexes
    lived before; a one-line notice on stderr), or a name recorded where it was built (`index/registry.py`); an
    existing index wins either way."""
    from lookalike.index.store import FaceStore

    p = Path(name_or_path)
    named = (home or config.index_home()) / str(name_or_path)
    is_path = os.sep in str(name_or_path) or str(name_or_path).startswith(".")
    legacy = None if is_path or home is not None else config.legacy_index_home() / str(name_or_path)
    candidates = [c for c in (p, named, legacy) if c is not None]
    for check in (lambda c: (c / MANIFEST).exists(), lambda c: c.is_dir() and FaceStore.looks_like_index(c)):
        for candidate in candidates:  # an index with its manifest first, then a damaged one (for `repair`)
            if check(candidate):
                if candidate == legacy and legacy != named:
                    legacy_notice(legacy, named)
                return candidate
    if not is_path:
        from lookalike.index.registry import lookup  # a name built in another folder

        recorded = lookup(str(name_or_path))
        if recorded is not None and FaceStore.exists(recorded):
            return recorded
    return p if is_path else named


def legacy_notice(old: Path, new: Path) -> None:
    """Say once per process that a named index was found in the old place."""
    if str(old) in _NOTICED:
        return
    _NOTICED.add(str(old))
    print(
        f"lookalike: note: using {old} (where named indexes lived before); new ones go to {new.parent}: move it "
        f"there, or set LOOKALIKE_INDEX_HOME={old.parent} to keep using that folder",
        file=sys.stderr,
    )


_NOTICED: set[str] = set()
