"""SQLite database files that take the process' umask, as every other file helix_tf writes.

SQLite creates a missing database file with mode ``0644`` (its compile-time default,
masked by the umask): under a team's ``umask 002`` on a shared, group-owned folder
every entry of the store is group-writable but the metadata database is not, so a
teammate's run fails to record. Creating the file empty first, with ``0666`` masked by
the umask (what :func:`open` gives), fixes that; SQLite then opens the empty file as a
new database and gives its ``-wal`` and ``-shm`` files the database file's permissions.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["create_database_file"]


def create_database_file(path: str | os.PathLike[str]) -> None:
    """Create ``path`` empty with the umask's permissions unless it exists (another
    process creating it at the same moment is fine: the first one's file is used)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(os.fspath(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
