"""Advisory file locks that work on Linux, macOS and Windows, shared (readers) or exclusive (the one writer).

portalocker does the locking (fcntl.flock on POSIX, LockFileEx on Windows); filelock, the other maintained
choice, has no shared locks, which readers of an index need beside each other.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

import portalocker


@contextlib.contextmanager
def file_lock(path: Path, shared: bool = False, blocking: bool = True) -> Iterator[bool]:
    """Hold a lock on `path` (created if missing) for the block; yields whether it was taken.

    shared: a reader's lock (many at once; none while a writer holds it); else exclusive. blocking=False yields
    False at once instead of waiting when someone else holds a conflicting lock. A shared lock on a file that
    cannot be opened for writing (a read-only index) yields True: no writer can change that folder anyway.
    """
    try:
        fh = open(path, "a+b")
    except OSError as e:
        if shared and e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            yield True
            return
        raise
    flags = portalocker.LockFlags.SHARED if shared else portalocker.LockFlags.EXCLUSIVE
    if not blocking:
        flags |= portalocker.LockFlags.NON_BLOCKING
    try:
        try:
            portalocker.lock(fh, flags)
        except portalocker.exceptions.LockException:
            yield False
            return
        try:
            yield True
        finally:
            portalocker.unlock(fh)
    finally:
        fh.close()
