"""File names that are not valid UTF-8, stored as text that round-trips.

On POSIX a file name is bytes; Python hands undecodable bytes over as lone surrogates ("surrogateescape"),
which Parquet/Arrow strings cannot hold. The engine keeps every path as *stored text*: a name that is valid
UTF-8 is itself; any other name has each undecodable byte written `\\xNN` (and its backslashes doubled), so
it is readable in a table and in a terminal. `fs_path` turns stored text back into the name the OS knows.

Written by hand: the standard library's "backslashreplace" only encodes, it has no decoder.
"""

from __future__ import annotations

import os
import re

_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2})")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_text(path: str | os.PathLike) -> str:
    """The stored text of a path (itself when it is valid UTF-8)."""
    p = os.fspath(path)
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if _is_utf8(p):
        return p
    raw = os.fsencode(p)
    out: list[str] = []
    for chunk in raw.split(b"\\"):
        out.append(chunk.decode("utf-8", "backslashreplace"))
    return "\\\\".join(out)


def _unescape(text: str) -> str | None:
    """The OS name of escaped text, or None when `text` holds no escape this module writes."""
    if "\\" not in text:
        return None
    parts: list[bytes] = []
    pos = 0
    for m in _ESCAPE.finditer(text):
        parts.append(text[pos : m.start()].encode("utf-8"))
        tok = m.group(1)
        parts.append(b"\\" if tok == "\\" else bytes([int(tok[1:], 16)]))
        pos = m.end()
    parts.append(text[pos:].encode("utf-8"))
    raw = b"".join(parts)
    try:
        raw.decode("utf-8")
        return None  # valid UTF-8 names are stored as themselves, so this text was never escaped
    except UnicodeDecodeError:
        return os.fsdecode(raw)


def fs_path(text: str) -> str:
    """The name to give the OS for stored text (a file literally named like the text wins)."""
    if os.path.lexists(text):
        return text
    return _unescape(text) or text


def shown(path: str) -> str:
    """A path fit to print: undecodable bytes escaped (stored text already is)."""
    return to_text(path)
