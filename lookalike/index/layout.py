"""Every name in an index folder, in one place: the files the store writes, the side files other rooms keep there,
the locks, and the key that stamps a file with the index generation it was written for. Nothing else spells these
names (finding an index by name is `lookalike.index.summary.locate`). Every file is written atomically; the side
files under a lock: removed.parquet under the writer's, people.parquet under the state lock (as the writer swaps
its files), people_edits.json under its own (the CLI and a running server both edit it).

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
    .people_edits.lock   held while people_edits.json is read, changed and written
"""

from __future__ import annotations

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
PEOPLE_EDITS_LOCK = ".people_edits.lock"
LOCKS = (WRITER_LOCK, STATE_LOCK)

#: The Parquet metadata key holding the generation a file was written for (the store's files and people.parquet).
GENERATION_KEY = b"lookalike_generation"
#: The key people.parquet used before 0.2 (read, never written).
OLD_PEOPLE_GENERATION_KEY = b"lookalike.generation"
#: The manifest's identity, kept in every Parquet file for `repair`.
MANIFEST_KEY = b"lookalike_manifest"
