"""Creating the metadata tables and migrating older ones, safely under concurrent clients.

Every client checks the schema version when it opens the database. An older (or no)
schema is upgraded in one write transaction that first serialises the clients: SQLite's
``BEGIN IMMEDIATE`` takes the write lock; on PostgreSQL a transaction-scoped advisory
lock does (DDL is transactional there, so a client that waited finds the tables made and
the version current, and does nothing). Other servers rely on the retry of a write
whose concurrent twin won.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from helix_tf.errors import StoreError
from helix_tf.reuse.metadata._schema import SCHEMA_VERSION, _tables
from helix_tf.roles import NodeState

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from helix_tf.reuse.metadata._database import Database

logger = logging.getLogger(__name__)

#: The key of PostgreSQL's advisory lock held while the schema is created or migrated.
_SCHEMA_LOCK = 0x48454C4958  # "HELIX"


def ensure_schema(db: Database) -> None:
    """Check the schema version; create or migrate the tables when it is older."""
    found = db.read(lambda conn: schema_version(db, conn), "read the schema version")
    _refuse_newer(found, db.url)
    if found == SCHEMA_VERSION:
        return

    def upgrade(conn: Connection) -> None:
        if db.postgresql:
            conn.execute(db.sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        current = schema_version(db, conn)  # again: another client may have won
        _refuse_newer(current, db.url)
        if current == SCHEMA_VERSION:
            return
        meta = db.tables.meta
        meta.metadata.create_all(conn, checkfirst=True)
        for version in range(current, SCHEMA_VERSION):
            _MIGRATIONS[version](conn)
        if current == 0:
            conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        else:
            conn.execute(
                meta.update()
                .where(meta.c.key == "schema_version")
                .values(value=str(SCHEMA_VERSION))
            )
        logger.info("metadata database %s: schema %d -> %d", db.url, current, SCHEMA_VERSION)

    db.write(upgrade, "create the metadata tables")


def schema_version(db: Database, conn: Connection) -> int:
    """The schema version the database holds; 0 when it has no ``helix_meta`` row."""
    meta = db.tables.meta
    if not db.sa.inspect(conn).has_table(meta.name):
        return 0
    value = conn.execute(db.sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    try:
        return int(value) if value is not None else 0
    except ValueError as exc:
        raise StoreError(
            f"metadata database {db.url} holds schema_version={value!r}, "
            f"expected an integer; use another --metadata URL"
        ) from exc


def _refuse_newer(found: int, url: str) -> None:
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"metadata database {url} was written by a newer helix_tf "
            f"(schema {found} > {SCHEMA_VERSION}); upgrade helix_tf or use another "
            f"--metadata URL"
        )


def _migrate_0_to_1(conn: Connection) -> None:
    """Tables without a ``helix_meta`` row: fill ``latest_compute`` from ``node_runs``."""
    import sqlalchemy as sa

    t = _tables()
    if conn.execute(sa.select(t.latest_compute.c.name).limit(1)).first() is not None:
        return
    nr, runs = t.node_runs, t.runs
    newest = (
        sa.select(runs.c.workflow_id, nr.c.name, runs.c.approx, sa.func.max(nr.c.id))
        .join(runs, runs.c.id == nr.c.run_id)
        .where(nr.c.state == NodeState.COMPUTE.value)
        .group_by(runs.c.workflow_id, nr.c.name, runs.c.approx)
    )
    columns = ["workflow_id", "name", "approx", "node_run_id"]
    conn.execute(t.latest_compute.insert().from_select(columns, newest))


def _add_columns(conn: Connection, table: str, columns: dict[str, str]) -> None:
    """``ALTER TABLE table ADD COLUMN`` for each of ``columns`` the table lacks."""
    import sqlalchemy as sa

    present = {c["name"] for c in sa.inspect(conn).get_columns(table)}
    for name, sql_type in columns.items():
        if name not in present:  # a fresh database got it from create_all
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))


def _migrate_1_to_2(conn: Connection) -> None:
    """``runs.process``: which process runs a run, so a killed one can be told."""
    _add_columns(conn, "runs", {"process": "TEXT"})


def _migrate_2_to_3(conn: Connection) -> None:
    """Who ran each run and where, who recorded each version (team mode)."""
    _add_columns(conn, "runs", {"user_name": "VARCHAR(255)", "host_name": "VARCHAR(255)"})
    _add_columns(conn, "versions", {"user_name": "VARCHAR(255)"})


# Migrations from schema version N to N + 1, run in one write transaction after the
# missing tables are created. Version 0 means "no helix_meta row".
_MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    0: _migrate_0_to_1,
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
}
