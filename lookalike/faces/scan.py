"""Finding photo files: a folder walked recursively (hidden entries skipped), a list file of paths (one per line,
NUL-separated, or a `path,identity` CSV), or one photo; files that are not photos by their ending and first bytes
are counted and skipped, unsupported formats become rejects. Paths are stored text (`lookalike.paths`)."""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.errors import LookalikeError
from lookalike.faces.labels import read_labels
from lookalike.faces.photos import PHOTO_SUFFIXES, UNSUPPORTED_SUFFIXES, sniff_image
from lookalike.paths import fs_path, to_text


@dataclass
class SourceScan:
    """What a source holds: photo paths to read, rejects found by name, how many files were skipped."""

    kind: str  # "folder", "list" or "photo"
    root: str | None  # the folder whose sub-folders name identities (absolute, not resolved)
    photos: list[str] = field(default_factory=list)  # stored text, absolute
    unsupported: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped: int = 0  # files that are not photos (by ending and by their first bytes), hidden files
    labels: dict[str, str] | None = None  # from a `path,identity` list file


def _regular_head(path: str, n: int = 32) -> bytes | None:
    """The first `n` bytes of a regular file, or None (not regular, unreadable). Never blocks on a FIFO."""
    try:
        if not statmod.S_ISREG(os.stat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            if not statmod.S_ISREG(os.fstat(fd).st_mode):
                return None
            return os.read(fd, n)
        finally:
            os.close(fd)
    except OSError:
        return None


def _classify(path: str, name: str, scan: SourceScan) -> None:
    suffix = os.path.splitext(name)[1].lower()
    if suffix in PHOTO_SUFFIXES:
        scan.photos.append(to_text(path))
    elif suffix in UNSUPPORTED_SUFFIXES:
        scan.unsupported.append((to_text(path), f"unsupported photo format ({suffix}): {UNSUPPORTED_SUFFIXES[suffix]}"))
    else:
        head = _regular_head(path)
        if head and sniff_image(head):
            scan.photos.append(to_text(path))
        else:
            scan.skipped += 1


def _read_list(src: Path, scan: SourceScan) -> None:
    """A list file: one path per line (or NUL-separated, as `find -print0` writes), or a CSV with a `path,identity`
    header (then the labels come too).

    Lines are bytes-safe (a name that is not UTF-8 is taken as the OS would); relative paths are taken from
    the list's folder; `#` starts a comment line.
    """
    raw = src.read_bytes()
    base = os.path.abspath(src.parent)
    first = raw.split(b"\n", 1)[0].strip().lower().replace(b"\t", b",").replace(b" ", b"")
    if first.startswith(b"path,identity"):
        scan.labels = read_labels(src)
        for p in scan.labels:
            scan.photos.append(p)
        return
    # `find -print0` separates names by NUL (a name may hold a newline, never a NUL): split on it when it is there
    lines = raw.split(b"\0") if b"\0" in raw else raw.splitlines()
    for line in lines:
        text = os.fsdecode(line.strip(b"\r\n") if b"\0" in raw else line.strip())
        if not text or text.startswith("#"):
            continue
        scan.photos.append(to_text(os.path.join(base, text)))


def scan_source(source: str | Path) -> SourceScan:
    """Photos under a folder (recursive, sorted, hidden entries skipped), listed in a text file, or one photo.

    A folder: files with a photo ending, and files without one whose first bytes are an image; camera raw
    and other photo files this engine cannot decode become rejects by name. A list file: every listed path,
    whatever its ending, so a bad one becomes a reject, not a skip. A single photo: itself.
    """
    src_text = os.fspath(source)
    src = Path(fs_path(src_text))
    if src.is_dir():
        root = os.path.abspath(src)
        scan = SourceScan("folder", root)

        def unreadable(e: OSError) -> None:  # os.walk skips a folder it cannot list: say so, as a reject
            where = e.filename if isinstance(e.filename, str) else root
            scan.unsupported.append((to_text(where), f"folder cannot be read: {e.strerror or e}"))

        for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    scan.skipped += 1
                    continue
                _classify(os.path.join(dirpath, name), name, scan)
        return scan
    if src.is_file() or src.exists():
        path = os.path.abspath(src)
        suffix = src.suffix.lower()
        head = _regular_head(path)
        if suffix in PHOTO_SUFFIXES or suffix in UNSUPPORTED_SUFFIXES or (head is not None and sniff_image(head)):
            scan = SourceScan("photo", None)
            _classify(path, src.name, scan)
            if not scan.photos and not scan.unsupported:
                scan.photos.append(to_text(path))
            return scan
        if head is None:
            raise LookalikeError(f"{to_text(path)} is not a regular file, a folder or a list of photos")
        scan = SourceScan("list", None)
        _read_list(src, scan)
        return scan
    raise LookalikeError(f"no such folder, photo or list file: {to_text(src_text)}")


def iter_photo_files(source: str | Path) -> Iterator[Path]:
    """Photo files of a source (see `scan_source`), as paths the OS can open."""
    for p in scan_source(source).photos:
        yield Path(fs_path(p))
