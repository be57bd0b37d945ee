"""What an index holds, and which named indexes a user has: the records `lookalike info`, `lookalike indexes` and
the library's `Index.info()` print."""

from __future__ import annotations

import json
from pathlib import Path

from lookalike import config
from lookalike.errors import IndexCorruptError, LookalikeError


def describe(root: str | Path, check: bool = True, deep: bool | None = None) -> dict:
    """Head, faces, files, rejects, identities and dates of the index at `root`; with `check`, damage is an
    IndexCorruptError naming the first problem (`deep`: every page read against its checksum; None: for indexes
    under `store.DEEP_CHECK_BYTES`)."""
    from lookalike.index.store import FaceStore

    store = FaceStore.open(root)
    if check:
        problems = store.check(deep)
        if problems:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise IndexCorruptError(problems[0] + more)
    m = store.manifest
    faces = store.faces(["path", "identity"])
    identities = {i for i in faces["identity"].to_pylist() if i is not None}
    params = m.get("params", {})
    return {
        "index": str(store.root),
        "head": m["head"],
        "dim": m["dim"],
        "detector": params.get("detector"),
        "faces": faces.num_rows,
        "files": len(set(faces["path"].to_pylist())),
        "rejects": store.rejects().num_rows,
        "identities": len(identities),
        "weights_sha256": m["weights_sha256"],
        "index_factory": m.get("index_factory", "Flat"),
        "index_active": m.get("index_active", m.get("index_factory", "Flat")),
        "index_state": m.get("index_state"),
        "pending_parts": len(m["pending"]),
        "created": m["created"],
        "updated": m["updated"],
    }


def list_indexes() -> list[dict]:
    """Every named index this user has: those in the index home (and the old `./indexes`), and those recorded
    where they were built (`index/registry.py`), each once, by name. Read from the manifests alone (fast on any
    size); an index that cannot be read is listed with its problem instead of its figures."""
    from lookalike.index.layout import MANIFEST
    from lookalike.index.registry import recorded
    from lookalike.index.store import FaceStore

    found: dict[str, Path] = {}
    for home in (config.legacy_index_home(), config.index_home()):  # the current home wins a name
        if home.is_dir():
            for p in sorted(home.iterdir()):
                if FaceStore.looks_like_index(p):
                    found[p.name] = p
    for name, folder in recorded().items():
        found.setdefault(name, folder)
    rows = []
    for name, folder in sorted(found.items()):
        row: dict = {"name": name, "folder": str(folder)}
        try:
            m = json.loads((folder / MANIFEST).read_text())
            counts = m.get("counts", {})
            row.update(
                faces=counts.get("faces"),
                files=counts.get("files"),
                head=m["head"],
                detector=m.get("params", {}).get("detector"),
                updated=m.get("updated"),
                pending_parts=len(m.get("pending", [])),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            if not folder.exists():
                continue  # a recorded folder that is gone
            why = "no manifest: `lookalike repair` rebuilds it" if isinstance(e, OSError) else "unreadable manifest"
            row["problem"] = why
        rows.append(row)
    return rows


def check_name(name: str) -> str:
    """An index name usable as one folder name (no separators, not `.`/`..`, printable)."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or not name.isprintable():
        raise LookalikeError(f"index name {name!r} is not a folder name: use letters, digits, '-' or '_'")
    return name
