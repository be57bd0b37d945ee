"""Index locks (portalocker, so they hold on Windows too): readers share, the writer excludes, a busy lock is
reported at once when asked not to wait, a read-only folder still reads."""

from __future__ import annotations

import os
import sys

import pytest

from lookalike.locks import file_lock


def test_readers_share_and_the_writer_waits_for_none(tmp_path):
    lock = tmp_path / ".state.lock"
    with file_lock(lock, shared=True) as a, file_lock(lock, shared=True) as b:
        assert a and b  # two readers at once
        with file_lock(lock, blocking=False) as writer:
            assert writer is False  # no writer while they read
    with file_lock(lock, blocking=False) as writer:
        assert writer  # free again
        with file_lock(lock, shared=True, blocking=False) as reader:
            assert reader is False  # no reader while it writes


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads and writes any file")
def test_a_read_only_index_folder_still_takes_a_reader(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with file_lock(folder / ".state.lock", shared=True) as ok:
            assert ok
        with pytest.raises(PermissionError):
            with file_lock(folder / ".writer.lock"):
                pass
    finally:
        folder.chmod(0o755)
