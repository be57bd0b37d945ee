"""What an index holds, which named indexes a user has, and the one way every verb finds an index by name or folder
(`locate`): the records `lookalike info`, `lookalike indexes` and the library's `Index.info()` print."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from lookalike import config
from lookalike.errors import IndexCorruptError, LookalikeError
from lookalike.index.layout import MANIFEST


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


def list_indexes() -> list[dict]:
    """Every named index this user has: those in the index home (and the old `./indexes`), and those recorded
    where they were built (`index/registry.py`), each once, by name. Read from the manifests alone (fast on any
    size); an index that cannot be read is listed with its problem instead of its figures."""
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
