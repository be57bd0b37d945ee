"""`lookalike people`: the people of an index as the user sees them, and the edits that stay across clustering
(rename, merge, hide, move a face): `lookalike/index/people_edits.py`."""

from __future__ import annotations

import json
from collections import Counter

import click

from lookalike.cli.support import CONTEXT
from lookalike.index.summary import locate

INDEX = click.option("--index", "index_name", default=None, help="Index name or folder (default: the only one).")


def _known(root) -> tuple[list[str], list[str | None], str]:
    from lookalike.index.people_edits import people_view

    return people_view(root)


def _names(index_name: str | None):
    """`(index folder, the names shown now)` for an edit."""
    root = locate(index_name)
    return root, {n for n in _known(root)[1] if n}


@click.group("people", context_settings=CONTEXT)
def people_group() -> None:
    """The people of an index (`cluster` found them, or labels name them) and your edits of them, which stay
    across `lookalike cluster` runs and index additions."""


@people_group.command("list")
@INDEX
@click.option("--hidden", "with_hidden", is_flag=True, help="Also list the people hidden from People.")
@click.option("--json", "as_json", is_flag=True)
def people_list(index_name: str | None, with_hidden: bool, as_json: bool) -> None:
    """Every person with their number of faces, most first."""
    from lookalike.index.people_edits import read_edits

    root = locate(index_name)
    _, names, source = _known(root)
    hidden = read_edits(root).hidden
    counts = Counter(n for n in names if n is not None and (with_hidden or n not in hidden))
    rows = [{"person": n, "faces": c, "hidden": n in hidden} for n, c in counts.most_common()]
    if as_json:
        click.echo(json.dumps({"source": source, "people": rows}))
        return
    click.echo(f"{len(rows)} people ({source})", err=True)
    for r in rows:
        click.echo(f"{r['faces']:>6}  {r['person']}{'  (hidden)' if r['hidden'] else ''}")


@people_group.command("rename")
@click.argument("person")
@click.argument("new_name")
@INDEX
def people_rename(person: str, new_name: str, index_name: str | None) -> None:
    """Show PERSON as NEW_NAME (a person-N that clustering found, or a labelled identity)."""
    from lookalike.index.people_edits import rename

    root, known = _names(index_name)
    click.echo(rename(root, person, new_name, known))


@people_group.command("merge")
@click.argument("person")
@click.argument("into")
@INDEX
def people_merge(person: str, into: str, index_name: str | None) -> None:
    """Make PERSON's faces INTO's: one person from now on."""
    from lookalike.index.people_edits import merge

    root, known = _names(index_name)
    click.echo(merge(root, person, into, known))


@people_group.command("hide")
@click.argument("person")
@click.option("--undo", is_flag=True, help="Show the person on People again.")
@INDEX
def people_hide(person: str, undo: bool, index_name: str | None) -> None:
    """Leave PERSON off the People page (their faces still answer queries)."""
    from lookalike.index.people_edits import hide

    root, known = _names(index_name)
    click.echo(hide(root, person, known, hidden=not undo))


@people_group.command("move")
@click.argument("face")
@click.argument("person")
@INDEX
def people_move(face: str, person: str, index_name: str | None) -> None:
    """Show one face as PERSON: FACE is its face_id or vector id (as `query --json` and `/faces` give them)."""
    from lookalike.errors import LookalikeError
    from lookalike.index.people_edits import move_face
    from lookalike.index.store import FaceStore

    root = locate(index_name)
    faces = FaceStore.open(root).faces(["vector_id", "face_id"])
    by_id = {str(v): str(f) for v, f in zip(faces["vector_id"].to_pylist(), faces["face_id"].to_pylist(), strict=True)}
    face_ids = set(by_id.values())
    face_id = face if face in face_ids else by_id.get(face)
    if face_id is None:
        raise LookalikeError(f"no face {face!r} in {root}: give a face_id or a vector id")
    click.echo(move_face(root, face_id, person))
