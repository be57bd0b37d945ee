"""What a user says about people, kept apart from what `lookalike cluster` finds: `people_edits.json` in the index
folder. Renames, merges, hidden people and faces moved to another person are applied on top of every clustering
(and of the labelled identities where none ran), so they survive `lookalike cluster` runs and index additions:
clustering keeps its `person-N` ids stable and faces keep their `face_id`, which is what edits are keyed by.
immich's people work the same way (the user's name and merges stay, recognition refreshes the faces).

Every edit is in terms of the names a user sees. A face's person is worked out as:
1. the person its face was moved to, if it was moved; else the person clustering (or its label) gave it, renamed;
2. then followed through merges (`merged[a] = b`: everyone shown as a is shown as b).
Hidden people are left off the People page (their faces still answer queries).

Writes are atomic and serialised by a lock file, so the CLI and a running server may both edit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.atomic import atomic_write_text
from lookalike.errors import LookalikeError
from lookalike.index.layout import PEOPLE_EDITS, PEOPLE_EDITS_LOCK
from lookalike.locks import file_lock

EDITS = PEOPLE_EDITS
MAX_NAME = 200


@dataclass
class PeopleEdits:
    names: dict[str, str] = field(default_factory=dict)  # a person as clustering/labels name it -> the user's name
    merged: dict[str, str] = field(default_factory=dict)  # a shown name -> the shown name it was merged into
    hidden: set[str] = field(default_factory=set)  # shown names left off the People page
    faces: dict[str, str] = field(default_factory=dict)  # face_id -> the shown name it was moved to

    def __bool__(self) -> bool:
        return bool(self.names or self.merged or self.hidden or self.faces)

    def _follow(self, name: str) -> str:
        seen = {name}
        while name in self.merged:
            name = self.merged[name]
            if name in seen:  # a cycle (never written by `merge`, but a hand-edited file may hold one)
                break
            seen.add(name)
        return name

    def shown(self, face_id: str, found: str | None) -> str | None:
        """The person a face is shown as, from what clustering or its label said (`found`)."""
        if face_id in self.faces:
            return self._follow(self.faces[face_id])
        if found is None:
            return None
        return self._follow(self.names.get(found, found))

    def apply(self, found: list[str | None], face_ids: list[str]) -> list[str | None]:
        """`shown` for every face (rows aligned)."""
        if not self:
            return list(found)
        return [self.shown(f, p) for p, f in zip(found, face_ids, strict=True)]

    def as_json(self) -> dict:
        return {"names": self.names, "merged": self.merged, "hidden": sorted(self.hidden), "faces": self.faces}


def read_edits(root: str | Path) -> PeopleEdits:
    """The edits of the index at `root` (none when the file is absent; a damaged file is a one-line error)."""
    path = Path(root) / EDITS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return PeopleEdits()
    except (OSError, ValueError) as e:
        raise LookalikeError(f"{path} cannot be read ({type(e).__name__}): fix or delete it") from None
    try:
        return PeopleEdits(
            names={str(k): str(v) for k, v in data.get("names", {}).items()},
            merged={str(k): str(v) for k, v in data.get("merged", {}).items()},
            hidden={str(x) for x in data.get("hidden", [])},
            faces={str(k): str(v) for k, v in data.get("faces", {}).items()},
        )
    except (AttributeError, TypeError):
        raise LookalikeError(f"{path} is not a people edits file: fix or delete it") from None


def edits_stamp(root: str | Path) -> int:
    """A number that changes whenever the edits file does (its mtime in ns, 0 when absent)."""
    try:
        return (Path(root) / EDITS).stat().st_mtime_ns
    except OSError:
        return 0


def check_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise LookalikeError(f"a person's name must be 1 to {MAX_NAME} printable characters, not {name!r}")
    return name


def edit(root: str | Path, change: Callable[[PeopleEdits], str]) -> str:
    """Read, change and write the edits of the index at `root` under its lock; returns what `change` says."""
    root = Path(root)
    with file_lock(root / PEOPLE_EDITS_LOCK):
        edits = read_edits(root)
        said = change(edits)
        atomic_write_text(root / EDITS, json.dumps(edits.as_json(), indent=2, ensure_ascii=False) + "\n")
    return said


def rename(root: str | Path, old: str, new: str, known: set[str]) -> str:
    """Show person `old` as `new` from now on (`known`: the names shown now, to refuse an unknown `old`)."""
    new = check_name(new)
    if old not in known:
        raise LookalikeError(f"nobody is called {old!r} here")

    def change(e: PeopleEdits) -> str:
        for found, name in list(e.names.items()):
            if name == old:
                e.names[found] = new
        if old not in e.names.values():
            e.names[old] = new
        swapped = (((new if a == old else a), (new if b == old else b)) for a, b in e.merged.items())
        e.merged = {a: b for a, b in swapped if a != b}
        e.faces = {f: (new if p == old else p) for f, p in e.faces.items()}
        if old in e.hidden:
            e.hidden = (e.hidden - {old}) | {new}
        return f"{old} is now {new}"

    return edit(root, change)


def merge(root: str | Path, person: str, into: str, known: set[str]) -> str:
    """Show everyone shown as `person` as `into` (the faces of both are one person)."""
    for name in (person, into):
        if name not in known:
            raise LookalikeError(f"nobody is called {name!r} here")
    if person == into:
        raise LookalikeError("a person cannot be merged into themselves")

    def change(e: PeopleEdits) -> str:
        e.merged = {a: (into if b == person else b) for a, b in e.merged.items()}
        e.merged[person] = into
        e.faces = {f: (into if p == person else p) for f, p in e.faces.items()}
        e.hidden.discard(person)
        return f"{person} merged into {into}"

    return edit(root, change)


def hide(root: str | Path, person: str, known: set[str], hidden: bool = True) -> str:
    if hidden and person not in known:
        raise LookalikeError(f"nobody is called {person!r} here")

    def change(e: PeopleEdits) -> str:
        if hidden:
            e.hidden.add(person)
            return f"{person} is hidden from People"
        e.hidden.discard(person)
        return f"{person} is shown on People again"

    return edit(root, change)


def move_face(root: str | Path, face_id: str, person: str) -> str:
    """Show one face (by its `face_id`) as `person`, whatever clustering says of it later."""
    person = check_name(person)

    def change(e: PeopleEdits) -> str:
        e.faces[face_id] = person
        return f"face {face_id} moved to {person}"

    return edit(root, change)


def people_view(root: str | Path) -> tuple[list[str], list[str | None], str]:
    """Every face of the index at `root` as the user sees it: `(face_ids, person shown, source)`, rows in the
    store's order. The people `lookalike cluster` found for this version of the index, else the labels; the edits
    on top of either."""
    from lookalike.index.people import read_people
    from lookalike.index.store import FaceStore

    store = FaceStore.open(root)
    faces = store.faces(["vector_id", "face_id", "identity"])
    face_ids = [str(f) for f in faces["face_id"].to_pylist()]
    people = read_people(store.root, int(store.manifest.get("generation", -1)))
    if people is not None:
        found_by_face = dict(zip(people["face_id"].to_pylist(), people["person"].to_pylist(), strict=True))
        found = [found_by_face.get(f) for f in face_ids]
        source = "as `lookalike cluster` grouped them"
    else:
        found = faces["identity"].to_pylist()
        source = "labelled identities; `lookalike cluster` finds the others"
    edits = read_edits(store.root)
    if edits:
        source += ", with your edits"
    return face_ids, edits.apply(found, face_ids), source
