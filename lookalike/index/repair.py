"""`lookalike repair`: rebuild a damaged index folder from what survives.

Every readable face row (the main file and committed parts, the later row of a photo winning) is kept with a
unique vector id, the FAISS index is rebuilt from the stored embeddings, and a new manifest is written (its
identity comes from the old manifest, a journal, the copy kept in every Parquet file's metadata, the rows
themselves, or the head the user names). Photos whose rows were lost are embedded again by the next run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lookalike.errors import IndexCorruptError, IndexNotFoundError, LookalikeError
from lookalike.index.layout import WRITER_LOCK
from lookalike.index.store import (
    FACES,
    FORMAT_VERSION,
    MANIFEST_KEY,
    PART_RE,
    PARTS,
    REJECTS,
    REJECTS_SCHEMA,
    FaceStore,
    dedupe_ids,
    faces_schema,
    now_utc,
    supersede,
    vectors_of,
)
from lookalike.index.vector_index import active_description, update_index
from lookalike.locks import file_lock


@dataclass
class RepairReport:
    """What `repair_index` found and kept."""

    index: str
    problems: list[str] = field(default_factory=list)
    faces: int = 0
    files: int = 0
    rejects: int = 0
    ids_reassigned: int = 0
    sources: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def repair_index(root: str | Path, head_info: dict | None = None) -> RepairReport:
    """Rebuild a damaged index folder from what survives: every readable face row (main file and
    committed parts, later rows of a path winning), unique vector ids, a FAISS index from the stored
    embeddings, a new manifest. `head_info` ({head, dim, weights_sha256}) is needed only when no manifest
    and no Parquet file says which head built the index.
    """

    root = Path(root)
    if not FaceStore.looks_like_index(root):
        raise IndexNotFoundError(f"no index at {root} to repair")
    report = RepairReport(str(root))
    with file_lock(root / WRITER_LOCK, blocking=False) as got:
        if not got:
            raise LookalikeError(f"another `lookalike index` run is writing {root}; wait for it to finish")
        try:
            FaceStore._recover(root)
        except LookalikeError as e:
            report.problems.append(str(e))
        manifest: dict | None = None
        try:
            manifest = FaceStore._read_manifest(root)
        except LookalikeError as e:
            report.problems.append(str(e))
        try:
            if manifest is not None:
                FaceStore(root, manifest)._check_files()
        except IndexCorruptError as e:
            report.problems.append(str(e))

        def readable(path: Path) -> pa.Table | None:
            try:
                return pq.read_table(path, page_checksum_verification=True)  # a damaged page is not carried
            except (OSError, pa.ArrowInvalid) as e:
                if path.exists():
                    report.lost.append(f"{path.name}: {' '.join(str(e).split())[:80]}")
                return None

        parts = sorted(
            {f.name.split(".")[0] for f in (root / PARTS).iterdir() if PART_RE.match(f.name)}
            if (root / PARTS).is_dir()
            else set(),
            key=lambda n: (int(n.split("-")[1]), n),
        )
        core: dict | None = None
        faces_tables, rejects_tables, seen = [], [], []
        for label, fpath, rpath in [(FACES, root / FACES, root / REJECTS)] + [
            (f"{PARTS}/{p}", root / PARTS / f"{p}.faces.parquet", root / PARTS / f"{p}.rejects.parquet") for p in parts
        ]:
            f, r = readable(fpath), readable(rpath)
            for t in (f, r):
                if t is not None and core is None and MANIFEST_KEY in (t.schema.metadata or {}):
                    core = json.loads(t.schema.metadata[MANIFEST_KEY])
            if f is None and r is None:
                continue
            report.sources.append(label)
            paths: set[str] = set()
            for t in (f, r):
                if t is not None:
                    paths.update(t["path"].to_pylist())
            if faces_tables:
                seen.append(paths)
            faces_tables.append(f)
            rejects_tables.append(r)
        info = manifest or core or {}
        if not info.get("head") and faces_tables:
            for f in faces_tables:
                if f is not None and f.num_rows:
                    info = {"head": f["head"][0].as_py(), "dim": f.schema.field("embedding").type.list_size}
                    break
        if head_info:
            info = {**head_info, **{k: v for k, v in info.items() if v is not None}}
        if not info.get("head") or not info.get("dim"):
            raise LookalikeError(f"cannot tell which head built {root}: no manifest and no readable faces")
        if not info.get("weights_sha256") and head_info:
            info["weights_sha256"] = head_info.get("weights_sha256")
        dim = int(info["dim"])
        schema = faces_schema(dim)
        ftabs = [(t.cast(schema) if t is not None else schema.empty_table()) for t in faces_tables]
        rtabs = [(t.select(REJECTS_SCHEMA.names).cast(REJECTS_SCHEMA) if t is not None
                  else REJECTS_SCHEMA.empty_table()) for t in rejects_tables]  # fmt: skip
        faces = supersede(ftabs, seen, None) if ftabs else schema.empty_table()
        rejects = supersede(rtabs, seen, None) if rtabs else REJECTS_SCHEMA.empty_table()
        faces = faces.replace_schema_metadata(None)
        rejects = rejects.replace_schema_metadata(None)
        faces, report.ids_reassigned, next_id = dedupe_ids(faces, int((manifest or {}).get("next_id", 0)))
        factory = info.get("index_factory") or "Flat"
        index, state = update_index(None, vectors_of(faces, dim), faces["vector_id"].to_numpy(), factory)
        now = now_utc().isoformat()
        counts = {
            "faces": faces.num_rows,
            "files": len(pc.unique(faces["path"])) if faces.num_rows else 0,
            "rejects": rejects.num_rows,
        }
        new = {
            "format_version": FORMAT_VERSION,
            "head": info["head"],
            "dim": dim,
            "weights_sha256": info.get("weights_sha256") or "",
            "params": info.get("params") or {},
            "index_factory": factory,
            "metric": "inner_product",
            "generation": int((manifest or {}).get("generation", 0)) + 1,
            "next_id": next_id,
            "pending": [],
            "counts": counts,
            "index_active": active_description(index, factory, faces.num_rows, state),
            "index_state": state,
            "created": info.get("created") or now,
            "updated": now,
            "repaired": now,
        }
        store = FaceStore(root, new, writer=True)
        store.write_generation(faces, rejects, index, new)
        for p in parts:
            for k in ("faces", "rejects"):
                (root / PARTS / f"{p}.{k}.parquet").unlink(missing_ok=True)
        report.faces, report.files, report.rejects = counts["faces"], counts["files"], counts["rejects"]
    return report
