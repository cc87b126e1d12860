"""Opening the metadata database: engines, SQLite settings, schema checks, transactions."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from helix_tf.errors import StoreError
from helix_tf.reuse.metadata._schema import _MIGRATIONS, SCHEMA_VERSION, _Tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
_T = TypeVar("_T")


class _Database:
    """The SQL side of :class:`MetadataStore`: engine, schema, transactions, workflow ids.

    The attributes are set by ``MetadataStore.__init__``.
    """

    _sa: Any
    _t: _Tables
    _clock: Callable[[], float]
    url: str
    _sqlite: bool
    _engine: Engine

    # -- opening -------------------------------------------------------------------------

    def _create_engine(self, parsed: Any) -> Engine:
        sa = self._sa
        if not self._sqlite:
            try:
                return sa.create_engine(parsed, pool_pre_ping=True)
            except (sa.exc.SQLAlchemyError, ImportError) as exc:
                raise StoreError(
                    f"cannot open metadata database {self.url}: {exc}; is its database "
                    f"driver installed?"
                ) from exc
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
                    f"{self.url}: {exc}; pass another --metadata URL"
                ) from exc
        engine = sa.create_engine(parsed, **kwargs)
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        sa.event.listen(engine, "begin", _on_sqlite_begin)
        return engine

    def _open_schema(self) -> None:
        """Check the schema version; create or migrate the tables when it is older."""
        found = self._read(self._schema_version, "read the schema version")
        _refuse_newer(found, self.url)
        if found == SCHEMA_VERSION:
            return

        def upgrade(conn: Connection) -> None:
            current = self._schema_version(conn)  # again: another process may have won
            _refuse_newer(current, self.url)
            if current == SCHEMA_VERSION:
                return
            self._t.meta.metadata.create_all(conn, checkfirst=True)
            for version in range(current, SCHEMA_VERSION):
                _MIGRATIONS[version](conn)
            meta = self._t.meta
            if current == 0:
                conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            else:
                conn.execute(
                    meta.update()
                    .where(meta.c.key == "schema_version")
                    .values(value=str(SCHEMA_VERSION))
                )
            logger.info("metadata database %s: schema %d -> %d", self.url, current, SCHEMA_VERSION)

        self._write(upgrade, "create the metadata tables")

    def _schema_version(self, conn: Connection) -> int:
        meta = self._t.meta
        if not self._sa.inspect(conn).has_table(meta.name):
            return 0
        value = conn.execute(
            self._sa.select(meta.c.value).where(meta.c.key == "schema_version")
        ).scalar()
        try:
            return int(value) if value is not None else 0
        except ValueError as exc:
            raise StoreError(
                f"metadata database {self.url} holds schema_version={value!r}, "
                f"expected an integer; use another --metadata URL"
            ) from exc

    # -- transactions --------------------------------------------------------------------

    @contextmanager
    def _transaction(self, action: str, *, write: bool) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(helix_write=True)
                with conn.begin():
                    yield conn
        except self._sa.exc.SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            raise StoreError(f"cannot {action} in metadata database {self.url}: {detail}") from exc

    def _read(self, fn: Callable[[Connection], _T], action: str) -> _T:
        with self._transaction(action, write=False) as conn:
            return fn(conn)

    def _write(self, fn: Callable[[Connection], _T], action: str, *, attempts: int = 3) -> _T:
        """Run ``fn`` in one write transaction, again when a concurrent insert collided."""
        for attempt in range(1, attempts + 1):
            try:
                with self._transaction(action, write=True) as conn:
                    return fn(conn)
            except StoreError as exc:
                collided = isinstance(exc.__cause__, self._sa.exc.IntegrityError)
                if not collided or attempt == attempts:
                    raise
                logger.debug("retrying %s after a concurrent write: %s", action, exc)
        raise AssertionError("unreachable")

    # -- workflows -----------------------------------------------------------------------

    def _workflow_id(self, conn: Connection, name: str) -> int | None:
        wf = self._t.workflows
        found = conn.execute(self._sa.select(wf.c.id).where(wf.c.name == name)).scalar()
        return None if found is None else int(found)

    def _ensure_workflow(self, conn: Connection, name: str, config_path: str | None) -> int:
        wf = self._t.workflows
        row = conn.execute(
            self._sa.select(wf.c.id, wf.c.config_path).where(wf.c.name == name)
        ).first()
        if row is None:
            result = conn.execute(wf.insert().values(name=name, config_path=config_path or ""))
            key = result.inserted_primary_key
            assert key is not None  # an INSERT always has one
            return int(key[0])
        if config_path is not None and row.config_path != config_path:
            conn.execute(wf.update().where(wf.c.id == row.id).values(config_path=config_path))
        return int(row.id)


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


def _refuse_newer(found: int, url: str) -> None:
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"metadata database {url} was written by a newer helix_tf "
            f"(schema {found} > {SCHEMA_VERSION}); upgrade helix_tf or use another "
            f"--metadata URL"
        )
