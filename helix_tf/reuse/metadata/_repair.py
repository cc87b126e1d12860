"""A damaged metadata database: finding it before anything changes, setting it aside.

``helix-tf store verify`` checks the database beside the artifacts, ``--repair`` moves a
damaged SQLite file aside (kept, renamed; the next run starts a fresh history, the
stored artifacts stay and are reused), and ``helix-tf store gc`` refuses to remove a
dead run's lease while the database it must mark that run killed in is damaged.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from helix_tf.errors import StoreError
from helix_tf.reuse.metadata._urls import database_url, sqlite_path, sqlite_url

if TYPE_CHECKING:
    from helix_tf.reuse.metadata._database import Database

__all__ = ["DatabaseCheck", "check_database", "set_aside", "sqlite_file"]

#: The files of one SQLite database: its write-ahead log, shared memory and journal, and
#: the file itself last (interrupted halfway, no fresh database finds a stale log).
_SQLITE_SIDECARS = ("-wal", "-shm", "-journal", "")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseCheck:
    """What :func:`check_database` found: nothing (``problem`` None), damage that
    :func:`set_aside` repairs (``damaged``), or another problem (a newer schema, a
    server that does not answer) that its message says how to fix."""

    problem: str | None = None
    damaged: bool = False


def check_database(url: str) -> DatabaseCheck:
    """Open the metadata database at ``url`` and read every page (one line per problem).

    Nothing is created: a SQLite file that does not exist has no problem.
    """
    from helix_tf.reuse.metadata._database import DamagedDatabaseError

    path = sqlite_file(url)
    if path is not None and not path.exists():
        return DatabaseCheck()
    try:
        db = _open_schema(url, path)
        try:
            damage = db.check()
        finally:
            db.close()
    except DamagedDatabaseError as exc:
        return DatabaseCheck(problem=str(exc), damaged=True)
    except StoreError as exc:
        return DatabaseCheck(problem=str(exc))
    return DatabaseCheck(problem=damage, damaged=damage is not None)


def _open_schema(url: str, path: Path | None) -> Database:
    """The database at ``url`` with its schema checked (a newer one is refused, not taken
    for damage); a SQLite file in a folder that cannot be written (a read-only mount,
    where SQLite cannot open it as usual: its journal goes beside it) opens immutable."""
    from helix_tf.reuse.metadata._database import Database
    from helix_tf.reuse.metadata._migrate import ensure_schema

    db = Database(url)
    try:
        ensure_schema(db)
        return db
    except StoreError as exc:
        db.close()
        unwritable = path is not None and not os.access(path.parent, os.W_OK)
        refused = ("unable to open database file", "readonly database")  # mount, mode
        if path is None or not unwritable or not any(r in str(exc) for r in refused):
            raise
    db = Database(read_only_url(path))
    try:
        ensure_schema(db)
    except BaseException:
        db.close()
        raise
    return db


def read_only_url(path: Path) -> str:
    """The URL that opens the SQLite file at ``path`` read-only and immutable (no journal
    or lock files beside it: it opens in a folder that cannot be written)."""
    return sqlite_url(path, read_only=True)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite ``url``; None for a server database or SQLite in memory."""
    path = sqlite_path(database_url(url))
    return None if path is None else Path(path)


def set_aside(url: str, *, clock: float | None = None) -> Path:
    """Rename the damaged SQLite database at ``url`` (and its ``-wal``/``-shm`` files)
    to ``NAME.damaged-YYYYmmdd-HHMMSS``; the new name of the database file.

    Nothing is deleted: the file can still be inspected or recovered (``sqlite3 FILE
    .recover``). The next run creates a fresh database (its history starts afresh;
    the artifact store's entries are reused as before).

    Raises
    ------
    StoreError
        For a server database (a person must repair it there), or when the file
        cannot be renamed.
    """
    path = sqlite_file(url)
    if path is None:
        raise StoreError(
            f"metadata database {url} is not a SQLite file, so it cannot be set aside here: "
            "repair it on its server (or point --metadata at another database)"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(clock))
    moved = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while moved.exists():  # never over an earlier one
        moved, n = path.with_name(f"{path.name}.damaged-{stamp}-{n}"), n + 1
    try:
        for suffix in _SQLITE_SIDECARS:
            part = Path(f"{path}{suffix}")
            if part.exists():
                part.rename(f"{moved}{suffix}")
    except OSError as exc:
        raise StoreError(
            f"cannot move the damaged metadata database {path} aside ({exc}); move it "
            "yourself (history starts afresh; the stored artifacts are kept and reused)"
        ) from exc
    return moved
