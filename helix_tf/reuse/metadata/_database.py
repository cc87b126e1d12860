"""Opening the metadata database: its URL, its engine (SQLite settings), transactions."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from helix_tf._database_files import create_database_file
from helix_tf.errors import StoreError
from helix_tf.reuse.metadata._schema import _Tables, _tables
from helix_tf.reuse.metadata._urls import database_url, mask_password

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
#: Seconds to wait for a database server to answer a connection (unless the URL says).
CONNECT_TIMEOUT_S = 5
#: SQLSTATEs of a transaction the server aborted to let another one through (PostgreSQL's
#: serialization failure and deadlock): the transaction is run again.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
_T = TypeVar("_T")

#: Where a team's metadata URL can be set; named by messages about a bad one.
URL_SOURCES = "--metadata, HELIX_TF_METADATA or the project's helix_tf.toml"

#: Engines whose closing waits for :func:`close_deferred` (``None``: close at once).
_deferred: list[Engine] | None = None


def defer_closing() -> None:
    """From now on in this process, :meth:`Database.close` leaves the connections open
    until :func:`close_deferred`.

    Closing a SQLite file after a write checkpoints its write-ahead log into the
    database and syncs it (~16 ms here): a served run closes its databases after it
    has given its client the exit code. Every transaction is committed before; the
    checkpoint only moves committed pages, and a process that opens the file in the
    meantime reads them from the log.
    """
    global _deferred
    if _deferred is None:
        _deferred = []


def close_deferred() -> None:
    """Close what :meth:`Database.close` left open since :func:`defer_closing`; close at
    once from now on."""
    global _deferred
    engines, _deferred = _deferred or [], None
    for engine in engines:
        engine.dispose()


class DamagedDatabaseError(StoreError):
    """The metadata database's file is damaged (a page, the header, a promised table):
    ``helix-tf store verify --repair`` moves it aside."""


def _cannot_open(file: str | None) -> str:
    """Why SQLite could not open ``file`` ("unable to open database file"), and the fix."""
    fix = "or pass --metadata FILE"
    if not file or file.startswith("file:"):  # a URI (read-only opening): SQLite said it
        return ""
    path = Path(file)
    if path.is_dir():
        return f"; {path} is a folder, not a SQLite file: move it away, {fix}"
    if path.is_symlink() and not path.exists():
        return f"; {path} links to {os.readlink(path)}, which does not exist: fix the link, {fix}"
    if not path.parent.is_dir():
        return f"; its folder {path.parent} does not exist: create it, {fix}"
    if not os.access(path.parent, os.W_OK):
        return (
            f"; its folder {path.parent} cannot be written (SQLite keeps its journal beside "
            f"the file): grant write access to it, {fix}"
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"; this user may not read and write {path}: fix its permissions, {fix}"
    return f"; check {path} and its folder's permissions, {fix}"


class Database:
    """One SQL database: its engine, its URL (password hidden) and its transactions.

    ``url`` is a SQLAlchemy URL, or the path of a SQLite file. ``postgresql://``
    without a driver uses psycopg (version 3) when psycopg2 is not installed.
    """

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        import sqlalchemy as sa

        self.sa: Any = sa
        self.tables: _Tables = _tables()
        self.clock = clock
        parsed = _parse_url(sa, url)
        self.url: str = parsed.render_as_string(hide_password=True)
        self.sqlite: bool = parsed.get_backend_name() == "sqlite"
        self.postgresql: bool = parsed.get_backend_name() == "postgresql"
        #: The SQLite file (None: a server database, or SQLite in memory).
        self.file: str | None = (parsed.database or None) if self.sqlite else None
        self.engine: Engine = (
            _sqlite_engine(sa, parsed, self.url) if self.sqlite else _server_engine(sa, parsed)
        )

    @contextmanager
    def transaction(self, action: str, *, write: bool) -> Iterator[Connection]:
        """One transaction; a database error is a :class:`StoreError` naming ``action``."""
        try:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(helix_write=True)
                with conn.begin():
                    yield conn
        except self.sa.exc.SQLAlchemyError as exc:
            detail = " ".join(str(getattr(exc, "orig", None) or exc).split())  # one line
            hint = ""
            # A table or column its schema version promises is gone: damaged too.
            damaged = (
                "file is not a database",
                "database disk image is malformed",
                "no such table",
                "no such column",
            )
            if self.sqlite and any(d in detail for d in damaged):
                hint = (
                    "; the file is damaged: move it aside (`helix-tf store verify CONFIG "
                    "--repair` does; history starts afresh, the stored artifacts are kept and "
                    "reused), or pass --metadata FILE"
                )
            elif self.sqlite and "unable to open database file" in detail:
                hint = _cannot_open(self.file)
            elif self.sqlite and "database is locked" in detail:
                hint = (
                    f"; another process held a write lock on it for over {BUSY_TIMEOUT_S:g} s "
                    "(a `sqlite3` shell or a tool with a transaction open, or a stuck "
                    "helix-tf process): end it and run again, or pass --metadata FILE"
                )
            elif not self.sqlite and isinstance(exc, self.sa.exc.OperationalError):
                hint = (
                    "; is the database server running and reachable, and are the host, "
                    f"port, database, user and password right? Fix the URL ({URL_SOURCES})"
                )
            error = DamagedDatabaseError if hint.startswith("; the file is damaged") else StoreError
            raise error(f"cannot {action} in metadata database {self.url}: {detail}{hint}") from exc

    def read(self, fn: Callable[[Connection], _T], action: str) -> _T:
        """``fn(conn)`` in one read transaction."""
        with self.transaction(action, write=False) as conn:
            return fn(conn)

    def write(self, fn: Callable[[Connection], _T], action: str, *, attempts: int = 5) -> _T:
        """Run ``fn`` in one write transaction, again when a concurrent write collided."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction(action, write=True) as conn:
                    return fn(conn)
            except StoreError as exc:
                if not self._collided(exc.__cause__) or attempt == attempts:
                    raise
                logger.debug("retrying %s after a concurrent write: %s", action, exc)
                time.sleep(random.uniform(0.0, 0.02 * attempt))
        raise AssertionError("unreachable")

    def check(self) -> str | None:
        """What is damaged in the database, or None when every page reads.

        SQLite: ``PRAGMA quick_check`` (every page and index); a server database: one
        read of its schema version. A file too damaged to read raises
        :class:`DamagedDatabaseError`; a database that cannot be reached, StoreError.
        """

        def read(conn: Connection) -> list[str]:
            if self.sqlite:
                return [str(r[0]) for r in conn.exec_driver_sql("PRAGMA quick_check")]
            meta = self.tables.meta
            conn.execute(self.sa.select(meta.c.value).limit(1)).all()
            return ["ok"]

        found = self.read(read, "check every page")
        if found == ["ok"]:
            return None
        return (
            f"metadata database {self.url} is damaged: {'; '.join(found[:3])}"
            f"{f' (and {len(found) - 3} more problems)' if len(found) > 3 else ''}"
        )

    def _collided(self, exc: BaseException | None) -> bool:
        """A unique key another client inserted first, or a transaction the server aborted."""
        if isinstance(exc, self.sa.exc.IntegrityError):
            return True
        return getattr(getattr(exc, "orig", None), "sqlstate", None) in _RETRY_SQLSTATES

    def close(self) -> None:
        """Release the connections (the database cannot be used afterwards); after
        :func:`defer_closing`, at :func:`close_deferred`."""
        if _deferred is not None:
            _deferred.append(self.engine)
            return
        self.engine.dispose()


def _parse_url(sa: Any, url: str) -> URL:
    """A SQLAlchemy URL from ``url`` (a path stands for a SQLite file)."""
    url = database_url(url)
    try:
        return sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise StoreError(
            f"metadata URL {mask_password(url)!r} is not a SQLAlchemy URL; expected e.g. "
            f"'sqlite:///.helix/helix.db' or 'postgresql://user@host/db' ({URL_SOURCES})"
        ) from exc


def _server_engine(sa: Any, parsed: URL) -> Engine:
    masked = parsed.render_as_string(hide_password=True)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        driver = parsed.drivername
        advice = (
            'pip install "psycopg[binary]" (or helix_tf[team])'
            if driver.startswith("postgresql")
            else f"install the database driver for {driver!r}"
        )
        raise StoreError(
            f"cannot open metadata database {masked}: {exc}; is its database driver "
            f"installed? ({advice})"
        ) from exc


def _sqlite_engine(sa: Any, parsed: URL, url: str) -> Engine:
    database = parsed.database or ""
    memory = database in ("", ":memory:") or "mode=memory" in database
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    if memory:
        # One connection shared by every thread, or each would see its own database.
        kwargs["poolclass"] = sa.pool.StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    elif not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder {str(folder)!r} of metadata database "
                f"{url}: {exc}; pass another --metadata URL"
            ) from exc
        # An error here is SQLite's too, on connecting: that names the file and why.
        with contextlib.suppress(OSError):
            create_database_file(Path(database).expanduser())
    engine = sa.create_engine(parsed, **kwargs)
    sa.event.listen(engine, "connect", _on_sqlite_connect)
    sa.event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see _on_sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    # WAL mode is stored in the file. Switching to it needs an exclusive lock and, when
    # another process is switching too, fails at once with "database is locked"
    # instead of waiting for the busy timeout: retry until the timeout.
    import sqlite3

    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() in ("wal", "memory"):
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _on_sqlite_begin(conn: Connection) -> None:
    # A write transaction takes the write lock up front: a deferred transaction that
    # reads, then writes, fails at once with "database is locked" when another process
    # wrote in between, without waiting for the busy timeout.
    immediate = conn.get_execution_options().get("helix_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def workflow_id(db: Database, conn: Connection, name: str) -> int | None:
    """The id of workflow ``name``, None when it has no row."""
    wf = db.tables.workflows
    found = conn.execute(db.sa.select(wf.c.id).where(wf.c.name == name)).scalar()
    return None if found is None else int(found)


def ensure_workflow(db: Database, conn: Connection, name: str, config_path: str | None) -> int:
    """The id of workflow ``name``, inserted when new (its config path kept current)."""
    wf = db.tables.workflows
    row = conn.execute(db.sa.select(wf.c.id, wf.c.config_path).where(wf.c.name == name)).first()
    if row is None:
        result = conn.execute(wf.insert().values(name=name, config_path=config_path or ""))
        key = result.inserted_primary_key
        assert key is not None  # an INSERT always has one
        return int(key[0])
    if config_path is not None and row.config_path != config_path:
        conn.execute(wf.update().where(wf.c.id == row.id).values(config_path=config_path))
    return int(row.id)


def unknown_workflow(name: str, known: list[str], url: str) -> str:
    """The message for a workflow the database has no row of."""
    from helix_tf.errors import did_you_mean

    hint = did_you_mean(name, known)
    listed = ", ".join(repr(k) for k in sorted(known)) or "none"
    return f"no workflow {name!r} in metadata database {url}{hint}; known workflows: {listed}"


def unknown_run(run_id: int, url: str) -> str:
    """The message for a run id the database has no row of."""
    return (
        f"run {run_id} is not in metadata database {url}; "
        f"start it with MetadataStore.start_run first"
    )


_CHUNK = 500  # bound on the parameters of one ``IN (...)``; old SQLite allows 999


def chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    """``values`` in slices short enough for one ``IN (...)``."""
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]
