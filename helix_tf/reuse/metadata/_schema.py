"""The tables of the metadata database and the migrations between their versions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table

SCHEMA_VERSION = 3
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
    if _TABLES is None:
        from sqlalchemy import MetaData

        md = MetaData()
        _TABLES = _Tables(**_workflow_tables(md), **_run_tables(md), **_node_tables(md))
    return _TABLES


def _workflow_tables(md: MetaData) -> dict[str, Table]:
    """``helix_meta`` (schema version), workflows and their versions (compiled DAGs)."""
    from sqlalchemy import Column, Float, ForeignKey, Integer, String, Table, Text, UniqueConstraint

    return {
        "meta": Table(
            "helix_meta",
            md,
            Column("key", String(64), primary_key=True),
            Column("value", Text, nullable=False),
        ),
        "workflows": Table(
            "workflows",
            md,
            Column("id", Integer, primary_key=True),
            Column("name", String(255), nullable=False, unique=True),
            Column("config_path", Text, nullable=False, default=""),
        ),
        "versions": Table(
            "versions",
            md,
            Column("id", Integer, primary_key=True),
            Column("workflow_id", Integer, ForeignKey("workflows.id"), nullable=False),
            Column("number", Integer, nullable=False),
            Column("digest", String(128), nullable=False),
            Column("created", Float, nullable=False),
            Column("dag_json", Text, nullable=False),
            Column("parent_number", Integer, nullable=True),
            # Who recorded it first (version 3; NULL before: counts as everyone's).
            Column("user_name", String(255), nullable=True),
            UniqueConstraint("workflow_id", "number", name="uq_versions_number"),
            UniqueConstraint("workflow_id", "digest", name="uq_versions_digest"),
        ),
    }


def _run_tables(md: MetaData) -> dict[str, Table]:
    """Runs and their metrics."""
    from sqlalchemy import (
        Boolean,
        Column,
        Float,
        ForeignKey,
        Index,
        Integer,
        String,
        Table,
        Text,
        UniqueConstraint as Unique,
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
        # Who ran it, and where (version 3; NULL before: counts as everyone's).
        Column("user_name", String(255), nullable=True),
        Column("host_name", String(255), nullable=True),
        Index("ix_runs_workflow", "workflow_id", "id"),
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
        Unique("run_id", "name", name="uq_metrics_name"),
    )
    return {"runs": runs, "metrics": metrics}


def _node_tables(md: MetaData) -> dict[str, Table]:
    """What happened to each node in each run, and the newest compute of each node."""
    from sqlalchemy import (
        BigInteger,
        Boolean,
        Column,
        Float,
        ForeignKey,
        Index,
        Integer,
        String,
        Table,
        Text,
        UniqueConstraint,
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
    return {"node_runs": node_runs, "latest_compute": latest_compute}
