"""Identity labels of photos: a labels file (`path,identity` CSV or TSV) and the folder-name rule (a photo in a
sub-folder of the indexed folder is labelled by that sub-folder's name)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from lookalike.errors import LookalikeError
from lookalike.paths import fs_path, to_text


def read_labels(path: str | Path) -> dict[str, str]:
    """A labels file: CSV or TSV with columns `path,identity` (header optional, quoting as CSV does)
    -> {absolute path (stored text): identity}. Relative paths are taken from the file's folder."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8", "surrogateescape")
    except OSError as e:
        raise LookalikeError(f"cannot read labels file {p}: {e.strerror or e}") from None
    text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark (Excel's "CSV UTF-8") is not part of the header
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return {}
    delimiter = "\t" if "\t" in lines[0] else ","
    labels: dict[str, str] = {}
    base = os.path.abspath(p.parent)
    for n, row in enumerate(csv.reader(lines, delimiter=delimiter), 1):
        row = [c.strip() for c in row]
        if n == 1 and [c.lower() for c in row[:2]] == ["path", "identity"]:
            continue
        if len(row) != 2 or not row[0]:
            raise LookalikeError(f"{p}: row {n}: expected 'path,identity' (quote a comma inside a field), got {row}")
        if not row[1]:
            raise LookalikeError(f"{p}: row {n}: {row[0]} has an empty identity (leave the photo out to not label it)")
        try:
            row[1].encode("utf-8")
        except UnicodeEncodeError:  # a path may be any bytes; a name is text (Parquet keeps UTF-8 strings only)
            raise LookalikeError(
                f"{p}: row {n}: the identity {to_text(row[1])} is not UTF-8 text: save the file as UTF-8 "
                f"(e.g. `iconv -f latin1 -t utf-8 {p.name}`)"
            ) from None
        key = to_text(os.path.join(base, row[0]))
        if labels.get(key, row[1]) != row[1]:
            raise LookalikeError(f"{p}: row {n}: {row[0]} is labelled twice, {labels[key]!r} and {row[1]!r}")
        labels[key] = row[1]
    return labels


def identity_from_folder(path: str, root: str | Path | None) -> str | None:
    """The photo's folder name when it sits in a sub-folder of the root, else None (unlabelled).

    Both are compared as absolute, unresolved paths: a symlinked root keeps its photos' labels.
    """
    if root is None:
        return None
    parent = os.path.dirname(path)
    base = to_text(os.path.abspath(fs_path(os.fspath(root))))
    rel = os.path.relpath(parent, base) if parent.startswith(base.rstrip(os.sep) + os.sep) else None
    if rel is None or rel in (".", "") or rel.startswith(".."):
        return None
    return os.path.basename(parent)
