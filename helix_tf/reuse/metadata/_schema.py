"""The tables of the metadata database and the migrations between their versions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

SCHEMA_VERSION = 2
"""Version of the database layout this helix_tf writes (kept in table ``helix_meta``)."""


@dataclass(frozen=True, slots=True)
class _Tables:
    meta: Table
    workflows: Table
    versions: Table
    runs: Table
    node_runs: Table
    metrics: Table
    latest_compute: Table


_TABLES: _Tables | None = None


def _tables() -> _Tables:
    """Build the schema once per process (SQLAlchemy is imported here, lazily)."""
    global _TABLES
    if _TABLES is not None:
        return _TABLES
    from sqlalchemy import (
        BigInteger,
        Boolean,
        Column,
        Float,
        ForeignKey,
        Index,
        Integer,
        MetaData,
        String,
        Table,
        Text,
        UniqueConstraint,
    )

    md = MetaData()
    meta = Table(
        "helix_meta",
        md,
        Column("key", String(64), primary_key=True),
        Column("value", Text, nullable=False),
    )
    workflows = Table(
        "workflows",
        md,
        Column("id", Integer, primary_key=True),
        Column("name", String(255), nullable=False, unique=True),
        Column("config_path", Text, nullable=False, default=""),
    )
    versions = Table(
        "versions",
        md,
        Column("id", Integer, primary_key=True),
        Column("workflow_id", Integer, ForeignKey("workflows.id"), nullable=False),
        Column("number", Integer, nullable=False),
        Column("digest", String(128), nullable=False),
        Column("created", Float, nullable=False),
        Column("dag_json", Text, nullable=False),
        Column("parent_number", Integer, nullable=True),
        UniqueConstraint("workflow_id", "number", name="uq_versions_number"),
        UniqueConstraint("workflow_id", "digest", name="uq_versions_digest"),
    )
    runs = Table(
        "runs",
        md,
        Column("id", Integer, primary_key=True),
        Column("workflow_id", Integer, ForeignKey("workflows.id"), nullable=False),
        Column("version_number", Integer, nullable=False),
        Column("started", Float, nullable=False),
        Column("finished", Float, nullable=True),
        Column("wall_seconds", Float, nullable=True),
        Column("status", String(16), nullable=False),
        Column("approx", Boolean, nullable=False),
        Column("policy", String(64), nullable=False),
        Column("store_url", Text, nullable=False),
        Column("params_json", Text, nullable=False),
        Column("error", Text, nullable=True),
        # "host pid start" of the process running it, to tell a killed run (version 2).
        Column("process", Text, nullable=True),
        Index("ix_runs_workflow", "workflow_id", "id"),
    )
    node_runs = Table(
        "node_runs",
        md,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
        Column("name", String(255), nullable=False),
        Column("kind", String(255), nullable=False),
        Column("fingerprint", String(128), nullable=False),
        Column("state", String(16), nullable=False),
        Column("compute_seconds", Float, nullable=False),
        Column("load_seconds", Float, nullable=False),
        Column("write_seconds", Float, nullable=False),
        Column("rows", BigInteger, nullable=True),
        Column("bytes", BigInteger, nullable=True),
        Column("materialized", Boolean, nullable=False),
        Column("reason", Text, nullable=False),
        UniqueConstraint("run_id", "name", name="uq_node_runs_name"),
        Index("ix_node_runs_state_id", "state", "id"),
    )
    # Derived from node_runs, kept by record_nodes: the newest 'compute' row of each
    # node name, so the planner's compute_history reads one row per node, however long
    # the history (a scan of node_runs grows with every run and agent trial).
    latest_compute = Table(
        "latest_compute",
        md,
        Column("workflow_id", Integer, ForeignKey("workflows.id"), primary_key=True),
        Column("name", String(255), primary_key=True),
        Column("approx", Boolean, primary_key=True),
        Column("node_run_id", Integer, ForeignKey("node_runs.id"), nullable=False),
    )
    metrics = Table(
        "metrics",
        md,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
        Column("name", String(255), nullable=False),
        Column("value", Float, nullable=True),  # NULL stands for NaN
        Column("lower", Float, nullable=True),
        Column("upper", Float, nullable=True),
        UniqueConstraint("run_id", "name", name="uq_metrics_name"),
    )
    _TABLES = _Tables(
        meta=meta,
        workflows=workflows,
        versions=versions,
        runs=runs,
        node_runs=node_runs,
        metrics=metrics,
        latest_compute=latest_compute,
    )
    return _TABLES


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
        .where(nr.c.state == "compute")
        .group_by(runs.c.workflow_id, nr.c.name, runs.c.approx)
    )
    columns = ["workflow_id", "name", "approx", "node_run_id"]
    conn.execute(t.latest_compute.insert().from_select(columns, newest))


def _migrate_1_to_2(conn: Connection) -> None:
    """``runs.process``: which process runs a run, so a killed one can be told."""
    import sqlalchemy as sa

    columns = {c["name"] for c in sa.inspect(conn).get_columns("runs")}
    if "process" not in columns:  # a fresh database got it from create_all
        conn.execute(sa.text("ALTER TABLE runs ADD COLUMN process TEXT"))


# Migrations from schema version N to N + 1, run in one write transaction after the
# missing tables are created. Version 0 means "no helix_meta row".
_MIGRATIONS: dict[int, Callable[[Connection], None]] = {0: _migrate_0_to_1, 1: _migrate_1_to_2}
