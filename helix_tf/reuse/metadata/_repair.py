"""A damaged metadata database: finding it before anything changes, setting it aside.

``helix-tf store verify`` checks the database beside the artifacts, ``--repair`` moves a
damaged SQLite file aside (kept, renamed; the next run starts a fresh history, the
stored artifacts stay and are reused), and ``helix-tf store gc`` refuses to remove a
dead run's lease while the database it must mark that run killed in is damaged.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from helix_tf.errors import StoreError
from helix_tf.reuse.metadata._urls import database_url

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
    from helix_tf.reuse.metadata._database import DamagedDatabaseError, Database
    from helix_tf.reuse.metadata._migrate import ensure_schema

    path = sqlite_file(url)
    if path is not None and not path.exists():
        return DatabaseCheck()
    try:
        db = Database(url)
        try:
            ensure_schema(db)  # a newer schema is refused here, not taken for damage
            damage = db.check()
        finally:
            db.close()
    except DamagedDatabaseError as exc:
        return DatabaseCheck(problem=str(exc), damaged=True)
    except StoreError as exc:
        return DatabaseCheck(problem=str(exc))
    return DatabaseCheck(problem=damage, damaged=damage is not None)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite ``url``; None for a server database or SQLite in memory."""
    full = database_url(url)
    prefix = "sqlite:///"
    if not full.startswith(prefix) or full == prefix:
        return None
    return Path(full[len(prefix) :].split("?", 1)[0])


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
