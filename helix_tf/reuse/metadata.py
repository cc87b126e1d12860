"""The metadata database: workflow versions, runs, per-node measurements and metrics.

One database holds every workflow's history (DESIGN.md §7, §11). It answers the
questions the rest of helix_tf asks between runs:

* the cost model's compute times ``c_i`` (:meth:`MetadataStore.compute_history`) and
  the store's read throughput for load costs ``l_i`` (:meth:`MetadataStore.load_throughput`);
* how often each operator changes between versions, for the materialization
  policy (:meth:`MetadataStore.change_counts`);
* ``history``, ``diff`` and ``report`` (:meth:`MetadataStore.runs`,
  :meth:`MetadataStore.versions`).

It is written with SQLAlchemy Core, so any SQLAlchemy URL works; the default is an
embedded SQLite file. SQLAlchemy is imported when a store is opened, not when this
module is imported, so ``import helix_tf.reuse.metadata`` stays cheap.

SQLite files are opened in WAL mode with a 30 s busy timeout, and every write
transaction starts with ``BEGIN IMMEDIATE``: several processes (a run and the
background agent, say) can write to one file at once. WAL needs a local file
system; do not put the database on NFS.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from helix_tf.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "NODE_STATES",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "MetadataStore",
    "NodeRecord",
    "RunRecord",
    "VersionRecord",
    "fit_load_throughput",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Version of the database layout this helix_tf writes (kept in table ``helix_meta``)."""

NODE_STATES = ("compute", "load", "prune")
RUN_STATUSES = ("running", "ok", "failed")
BUSY_TIMEOUT_S = 30.0
_CHUNK = 500  # bound on the parameters of one ``IN (...)``; old SQLite allows 999
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord:
    """What happened to one node in one run.

    Parameters
    ----------
    name, kind, fingerprint
        The node's name, operator kind and fingerprint in that run.
    state
        ``"compute"``, ``"load"`` or ``"prune"``.
    compute_seconds, load_seconds, write_seconds
        Measured time to compute it, to load it from the store, to materialize it.
    rows, bytes
        Size of its result, when known.
    materialized
        Whether the run wrote it to the artifact store.
    reason
        The human-readable reason of the plan's or the materializer's decision.
    """

    name: str
    kind: str
    fingerprint: str
    state: str
    compute_seconds: float = 0.0
    load_seconds: float = 0.0
    write_seconds: float = 0.0
    rows: int | None = None
    bytes: int | None = None
    materialized: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One run of a workflow, with its nodes (in the order recorded) and its metrics.

    ``finished`` and ``wall_seconds`` are ``None`` while ``status`` is ``"running"``
    (or when the process died before finishing). ``intervals`` holds the
    uncertainty interval ``(lower, upper)`` of the metrics of an approximate run.
    """

    id: int
    workflow: str
    version: int
    started: float
    finished: float | None
    wall_seconds: float | None
    status: str
    approx: bool
    policy: str
    metrics: dict[str, float]
    nodes: tuple[NodeRecord, ...]
    error: str | None
    params: dict[str, Any]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    store_url: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionRecord:
    """One distinct compiled DAG of a workflow; ``parent`` is the version it followed."""

    workflow: str
    number: int
    digest: str
    created: float
    dag: dict[str, Any]
    parent: int | None


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


# Migrations from schema version N to N + 1, run in one write transaction after the
# missing tables are created. Version 0 means "no helix_meta row".
_MIGRATIONS: dict[int, Callable[[Connection], None]] = {0: _migrate_0_to_1}


class MetadataStore:
    """Workflow versions, runs, per-node measurements and metrics in one SQL database.

    Parameters
    ----------
    url
        A SQLAlchemy URL such as ``"sqlite:///.helix/helix.db"`` or
        ``"postgresql://user@host/helix"``. A string without ``://`` is taken as the
        path of a SQLite file. The parent folder of a SQLite file is created.
    clock
        Source of timestamps (``time.time`` by default); tests pass a fake clock.

    Raises
    ------
    StoreError
        When the URL is invalid, the database cannot be opened or created, or it was
        written by a newer helix_tf.

    Examples
    --------
    >>> store = MetadataStore("sqlite://")
    >>> store.record_version("census", "configs/census.py", {"nodes": []}, "d1")
    1
    >>> run = store.start_run("census", 1, approx=False, policy="helix", store_url="", params={})
    >>> store.finish_run(run, status="ok", wall_seconds=1.5, metrics={"auc": 0.9})
    >>> store.runs("census")[0].metrics
    {'auc': 0.9}
    >>> store.close()
    """

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        import sqlalchemy as sa

        self._sa = sa
        self._t = _tables()
        self._clock = clock
        if "://" not in url:
            url = f"sqlite:///{Path(url).expanduser().absolute()}"
        try:
            parsed = sa.engine.make_url(url)
        except (sa.exc.ArgumentError, ValueError) as exc:
            raise StoreError(
                f"metadata URL {url!r} is not a SQLAlchemy URL; expected e.g. "
                f"'sqlite:///.helix/helix.db' or 'postgresql://user@host/db'"
            ) from exc
        self.url = parsed.render_as_string(hide_password=True)
        self._sqlite = parsed.get_backend_name() == "sqlite"
        self._engine = self._create_engine(parsed)
        try:
            self._open_schema()
        except BaseException:
            self._engine.dispose()
            raise

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

    # -- workflows and versions ----------------------------------------------------------

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
            return int(result.inserted_primary_key[0])
        if config_path is not None and row.config_path != config_path:
            conn.execute(wf.update().where(wf.c.id == row.id).values(config_path=config_path))
        return int(row.id)

    def record_version(
        self, workflow: str, config_path: str, dag: dict[str, Any], digest: str
    ) -> int:
        """Record a compiled DAG and return its version number.

        A digest seen before for this workflow returns that version's number; a new
        one gets the next number, with the latest version as its parent.
        """
        try:
            dag_json = json.dumps(dag, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"the compiled DAG of workflow {workflow!r} is not JSON-serialisable ({exc}); "
                f"compiled structures must hold only JSON values"
            ) from exc
        sa, versions = self._sa, self._t.versions

        def write(conn: Connection) -> tuple[int, bool]:
            wid = self._ensure_workflow(conn, workflow, config_path)
            where = versions.c.workflow_id == wid
            seen = conn.execute(
                sa.select(versions.c.number).where(where, versions.c.digest == digest)
            ).scalar()
            if seen is not None:
                return int(seen), False
            latest = conn.execute(sa.select(sa.func.max(versions.c.number)).where(where)).scalar()
            number = (latest or 0) + 1
            conn.execute(
                versions.insert().values(
                    workflow_id=wid,
                    number=number,
                    digest=digest,
                    created=self._clock(),
                    dag_json=dag_json,
                    parent_number=latest,
                )
            )
            return number, True

        number, new = self._write(write, f"record a version of workflow {workflow!r}")
        logger.debug("workflow %r: %s version %d", workflow, "new" if new else "known", number)
        return number

    def versions(self, workflow: str) -> list[VersionRecord]:
        """Every version of ``workflow``, oldest first (``[]`` for an unknown workflow)."""
        v = self._t.versions

        def read(conn: Connection) -> list[VersionRecord]:
            wid = self._workflow_id(conn, workflow)
            if wid is None:
                return []
            rows = conn.execute(
                self._sa.select(v).where(v.c.workflow_id == wid).order_by(v.c.number)
            )
            return [_version_record(workflow, row) for row in rows]

        return self._read(read, f"read the versions of workflow {workflow!r}")

    def version(self, workflow: str, number: int) -> VersionRecord:
        """Version ``number`` of ``workflow``.

        Raises
        ------
        StoreError
            When it was never recorded; the message lists the versions that were.
        """
        sa, v = self._sa, self._t.versions

        def read(conn: Connection) -> VersionRecord:
            wid = self._workflow_id(conn, workflow)
            if wid is None:
                names = conn.execute(sa.select(self._t.workflows.c.name)).scalars().all()
                raise StoreError(_unknown_workflow(workflow, list(names), self.url))
            row = conn.execute(
                sa.select(v).where(v.c.workflow_id == wid, v.c.number == number)
            ).first()
            if row is not None:
                return _version_record(workflow, row)
            known = conn.execute(
                sa.select(v.c.number).where(v.c.workflow_id == wid).order_by(v.c.number)
            ).scalars()
            listed = ", ".join(str(n) for n in known) or "none"
            raise StoreError(
                f"workflow {workflow!r} has no version {number}; recorded versions: {listed}"
            )

        return self._read(read, f"read version {number} of workflow {workflow!r}")

    def change_counts(self, workflow: str) -> dict[str, tuple[int, int]]:
        """Per node name: ``(versions in which its fingerprint changed, versions it is in)``.

        A node's fingerprint in a version is compared with its fingerprint in the
        latest earlier version that contained it; its first appearance is not a
        change. ``1 - changed / (appeared - 1)`` estimates the probability that the
        node's artifact is still valid after the next edit.
        """
        v = self._t.versions

        def read(conn: Connection) -> list[str]:
            wid = self._workflow_id(conn, workflow)
            if wid is None:
                return []
            query = self._sa.select(v.c.dag_json).where(v.c.workflow_id == wid)
            return list(conn.execute(query.order_by(v.c.number)).scalars())

        last: dict[str, str] = {}
        counts: dict[str, tuple[int, int]] = {}
        for dag_json in self._read(read, f"read the versions of workflow {workflow!r}"):
            for name, fingerprint in _node_fingerprints(json.loads(dag_json)).items():
                changed, appeared = counts.get(name, (0, 0))
                if name in last and last[name] != fingerprint:
                    changed += 1
                counts[name] = (changed, appeared + 1)
                last[name] = fingerprint
        return counts

    # -- runs ----------------------------------------------------------------------------

    def start_run(
        self,
        workflow: str,
        version: int,
        *,
        approx: bool,
        policy: str,
        store_url: str,
        params: Mapping[str, Any],
    ) -> int:
        """Record the start of a run (status ``"running"``) and return its id.

        ``params`` are stored as JSON; values JSON cannot hold are stored as text.
        """
        params_json = json.dumps(dict(params), sort_keys=True, default=str)

        def write(conn: Connection) -> int:
            wid = self._ensure_workflow(conn, workflow, None)
            result = conn.execute(
                self._t.runs.insert().values(
                    workflow_id=wid,
                    version_number=version,
                    started=self._clock(),
                    status="running",
                    approx=approx,
                    policy=policy,
                    store_url=store_url,
                    params_json=params_json,
                )
            )
            return int(result.inserted_primary_key[0])

        run_id = self._write(write, f"start a run of workflow {workflow!r}")
        logger.debug("workflow %r version %d: run %d started", workflow, version, run_id)
        return run_id

    def record_nodes(self, run_id: int, nodes: Sequence[NodeRecord]) -> None:
        """Record what happened to ``nodes`` in run ``run_id``.

        May be called several times per run; a node recorded again replaces its
        earlier record.
        """
        names = [node.name for node in nodes]
        duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
        if duplicates:
            raise ValueError(
                f"each node may appear once per call, but got more than once: {duplicates}"
            )
        bad = [(node.name, node.state) for node in nodes if node.state not in NODE_STATES]
        if bad:
            raise ValueError(f"node state must be one of {NODE_STATES}, but got {bad}")
        if not nodes:
            return
        table = self._t.node_runs
        rows = [
            {
                "run_id": run_id,
                "name": node.name,
                "kind": node.kind,
                "fingerprint": node.fingerprint,
                "state": node.state,
                "compute_seconds": float(node.compute_seconds),
                "load_seconds": float(node.load_seconds),
                "write_seconds": float(node.write_seconds),
                "rows": node.rows,
                "bytes": node.bytes,
                "materialized": bool(node.materialized),
                "reason": node.reason,
            }
            for node in nodes
        ]
        computed = [node.name for node in nodes if node.state == "compute"]
        sa, runs, latest = self._sa, self._t.runs, self._t.latest_compute

        def write(conn: Connection) -> None:
            run = conn.execute(
                sa.select(runs.c.workflow_id, runs.c.approx).where(runs.c.id == run_id)
            ).first()
            if run is None:
                raise StoreError(_unknown_run(run_id, self.url))
            stale: set[str] = set()  # names whose latest compute is being replaced
            for chunk in _chunks(names):
                old = sa.select(table.c.id).where(table.c.run_id == run_id, table.c.name.in_(chunk))
                found = conn.execute(sa.select(latest.c.name).where(latest.c.node_run_id.in_(old)))
                stale.update(found.scalars())
                conn.execute(latest.delete().where(latest.c.node_run_id.in_(old)))
                conn.execute(table.delete().where(table.c.id.in_(old)))
            conn.execute(table.insert(), rows)
            self._update_latest(conn, run_id, run.workflow_id, run.approx, computed, stale)

        self._write(write, f"record the nodes of run {run_id}")

    def _update_latest(
        self,
        conn: Connection,
        run_id: int,
        workflow_id: int,
        approx: bool,
        computed: Sequence[str],
        stale: set[str],
    ) -> None:
        """Point ``latest_compute`` at the newest 'compute' rows of the given names."""
        sa, nr, latest = self._sa, self._t.node_runs, self._t.latest_compute
        newest: dict[str, int] = {}
        for chunk in _chunks(computed):
            query = sa.select(nr.c.name, nr.c.id).where(nr.c.run_id == run_id, nr.c.name.in_(chunk))
            newest.update((name, node_run_id) for name, node_run_id in conn.execute(query))
        replaced = sorted(stale - set(newest))  # recomputed, then re-recorded as load/prune
        for chunk in _chunks(replaced):
            query = (
                sa.select(nr.c.name, sa.func.max(nr.c.id))
                .join(self._t.runs, self._t.runs.c.id == nr.c.run_id)
                .where(
                    self._t.runs.c.workflow_id == workflow_id,
                    self._t.runs.c.approx == approx,
                    nr.c.state == "compute",
                    nr.c.name.in_(chunk),
                )
                .group_by(nr.c.name)
            )
            newest.update((name, node_run_id) for name, node_run_id in conn.execute(query))
        if not newest:
            return
        key = (latest.c.workflow_id == workflow_id, latest.c.approx == approx)
        existing: dict[str, int] = {}
        for chunk in _chunks(sorted(newest)):
            query = sa.select(latest.c.name, latest.c.node_run_id).where(
                *key, latest.c.name.in_(chunk)
            )
            existing.update((name, node_run_id) for name, node_run_id in conn.execute(query))
        inserts = [
            {"workflow_id": workflow_id, "name": name, "approx": approx, "node_run_id": new}
            for name, new in newest.items()
            if name not in existing
        ]
        if inserts:
            conn.execute(latest.insert(), inserts)
        for name, new in newest.items():
            if name in existing and existing[name] < new:  # a concurrent newer run wins
                conn.execute(
                    latest.update().where(*key, latest.c.name == name).values(node_run_id=new)
                )

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        wall_seconds: float,
        metrics: Mapping[str, float],
        intervals: Mapping[str, tuple[float, float]] | None = None,
        error: str | None = None,
    ) -> None:
        """Record the end of run ``run_id``: its status, wall time and metrics.

        ``intervals`` maps metric names to their uncertainty interval ``(lower, upper)``
        (approximate runs); every name in it must also be in ``metrics``.
        """
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"status must be one of {RUN_STATUSES[1:]}, but got {status!r}")
        intervals = dict(intervals or {})
        stray = sorted(set(intervals) - set(metrics))
        if stray:
            raise ValueError(
                f"intervals must be for metrics of the run, but got {stray} "
                f"not in metrics {sorted(metrics)}"
            )
        runs, table = self._t.runs, self._t.metrics
        rows = []
        for name, value in metrics.items():
            lower, upper = intervals.get(name, (None, None))
            rows.append(
                {
                    "run_id": run_id,
                    "name": name,
                    "value": _to_sql(value),
                    "lower": _to_sql(lower),
                    "upper": _to_sql(upper),
                }
            )

        def write(conn: Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(
                    finished=self._clock(),
                    wall_seconds=float(wall_seconds),
                    status=status,
                    error=error,
                )
            )
            conn.execute(table.delete().where(table.c.run_id == run_id))
            if rows:
                conn.execute(table.insert(), rows)

        self._write(write, f"finish run {run_id}")
        logger.debug("run %d finished: %s in %.3f s", run_id, status, wall_seconds)

    def _require_run(self, conn: Connection, run_id: int) -> None:
        runs = self._t.runs
        if conn.execute(self._sa.select(runs.c.id).where(runs.c.id == run_id)).first() is None:
            raise StoreError(_unknown_run(run_id, self.url))

    def runs(self, workflow: str, *, limit: int | None = None) -> list[RunRecord]:
        """Runs of ``workflow``, newest first, each with its nodes and metrics."""
        sa, t = self._sa, self._t

        def read(conn: Connection) -> list[RunRecord]:
            wid = self._workflow_id(conn, workflow)
            if wid is None:
                return []
            query = sa.select(t.runs).where(t.runs.c.workflow_id == wid)
            run_rows = list(conn.execute(query.order_by(t.runs.c.id.desc()).limit(limit)))
            ids = [row.id for row in run_rows]
            nodes: dict[int, list[NodeRecord]] = {}
            metrics: dict[int, dict[str, float]] = {}
            intervals: dict[int, dict[str, tuple[float, float]]] = {}
            for chunk in _chunks(ids):
                nr = t.node_runs
                q = sa.select(nr).where(nr.c.run_id.in_(chunk)).order_by(nr.c.id)
                for row in conn.execute(q):
                    nodes.setdefault(row.run_id, []).append(_node_record(row))
                m = t.metrics
                q = sa.select(m).where(m.c.run_id.in_(chunk)).order_by(m.c.id)
                for row in conn.execute(q):
                    metrics.setdefault(row.run_id, {})[row.name] = _from_sql(row.value)
                    if row.lower is not None or row.upper is not None:
                        interval = (_from_sql(row.lower), _from_sql(row.upper))
                        intervals.setdefault(row.run_id, {})[row.name] = interval
            return [
                RunRecord(
                    id=row.id,
                    workflow=workflow,
                    version=row.version_number,
                    started=row.started,
                    finished=row.finished,
                    wall_seconds=row.wall_seconds,
                    status=row.status,
                    approx=bool(row.approx),
                    policy=row.policy,
                    metrics=metrics.get(row.id, {}),
                    nodes=tuple(nodes.get(row.id, ())),
                    error=row.error,
                    params=json.loads(row.params_json),
                    intervals=intervals.get(row.id, {}),
                    store_url=row.store_url,
                )
                for row in run_rows
            ]

        return self._read(read, f"read the runs of workflow {workflow!r}")

    # -- the cost model's history --------------------------------------------------------

    def last_compute(
        self, workflow: str, name: str, *, approx: bool | None = None
    ) -> NodeRecord | None:
        """The latest record of node ``name`` computed in a run of ``workflow``.

        ``approx`` restricts it to approximate (``True``) or exact (``False``) runs;
        ``None`` takes the newer of the two.
        """
        query = self._latest_query(workflow, approx).where(self._t.latest_compute.c.name == name)

        def read(conn: Connection) -> NodeRecord | None:
            rows = list(conn.execute(query))
            return _node_record(max(rows, key=lambda row: row.id)) if rows else None

        return self._read(read, f"read the compute history of {workflow!r}.{name}")

    def compute_history(
        self, workflow: str, *, approx: bool | None = None
    ) -> dict[str, NodeRecord]:
        """:meth:`last_compute` for every node name of ``workflow``, in one query.

        It reads one row per node name (and kind of run), however long the history.
        """
        query = self._latest_query(workflow, approx)

        def read(conn: Connection) -> dict[str, NodeRecord]:
            newest: dict[str, Any] = {}
            for row in conn.execute(query):
                if row.name not in newest or newest[row.name].id < row.id:
                    newest[row.name] = row
            return {name: _node_record(row) for name, row in newest.items()}

        return self._read(read, f"read the compute history of workflow {workflow!r}")

    def _latest_query(self, workflow: str, approx: bool | None) -> Any:
        sa, nr, latest, wf = self._sa, self._t.node_runs, self._t.latest_compute, self._t.workflows
        query = (
            sa.select(nr)
            .select_from(latest)
            .join(wf, wf.c.id == latest.c.workflow_id)
            .join(nr, nr.c.id == latest.c.node_run_id)
            .where(wf.c.name == workflow)
        )
        return query if approx is None else query.where(latest.c.approx == approx)

    def load_throughput(
        self,
        *,
        default: float = 200e6,
        default_latency: float = 0.01,
        store_url: str | None = None,
        window: int = 200,
    ) -> tuple[float, float]:
        """Estimate ``(bytes per second, seconds of latency per artifact)`` of loads.

        Fitted by :func:`fit_load_throughput` to the latest ``window`` loads with a
        known size and time (of runs against ``store_url`` when given); the defaults
        are returned when there are too few.
        """
        sa, nr = self._sa, self._t.node_runs
        query = sa.select(nr.c.bytes, nr.c.load_seconds).where(
            nr.c.state == "load", nr.c.bytes > 0, nr.c.load_seconds > 0
        )
        if store_url is not None:
            runs = self._t.runs
            query = query.join(runs, runs.c.id == nr.c.run_id).where(runs.c.store_url == store_url)
        query = query.order_by(nr.c.id.desc()).limit(window)

        def read(conn: Connection) -> list[tuple[int, float]]:
            return [(int(b), float(s)) for b, s in conn.execute(query)]

        samples = self._read(read, "read the load history")
        return fit_load_throughput(samples, default=default, default_latency=default_latency)

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the database connections (the store cannot be used afterwards)."""
        self._engine.dispose()

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetadataStore({self.url!r})"


#: Loads smaller than this say nothing about throughput (they measure latency).
MIN_THROUGHPUT_BYTES = 256_000


def fit_load_throughput(
    samples: Sequence[tuple[int, float]],
    *,
    default: float = 200e6,
    default_latency: float = 0.01,
    min_samples: int = 5,
) -> tuple[float, float]:
    """Fit ``seconds = latency + bytes / throughput`` robustly to measured loads.

    The latency is the intercept of Tukey's resistant line (medians of the smallest
    and largest thirds by size), clipped to ``[0, 10th percentile of seconds]``; it is
    0 when the sizes are too alike to tell latency from throughput. The throughput is
    the median of ``bytes / (seconds - latency)``. Outliers (a cold cache, a stalled
    request) move neither.

    Parameters
    ----------
    samples
        ``(bytes, seconds)`` of past loads; pairs without positive values are ignored.
    default, default_latency
        Returned when fewer than ``min_samples`` usable samples remain.

    Returns
    -------
    tuple of float
        ``(bytes per second, latency in seconds)``.

    Examples
    --------
    >>> loads = [(n * 1_000_000, 0.05 + n * 0.01) for n in range(1, 11)]
    >>> throughput, latency = fit_load_throughput(loads)
    >>> round(throughput / 1e6), round(latency, 3)
    (100, 0.05)
    """
    points = sorted((float(b), float(s)) for b, s in samples if b > 0 and s > 0)
    if len(points) < min_samples:
        return default, default_latency
    third = max(1, len(points) // 3)
    small, large = points[:third], points[-third:]
    x_small, x_large = _median([b for b, _ in small]), _median([b for b, _ in large])
    seconds = sorted(s for _, s in points)
    floor = seconds[int(0.1 * (len(seconds) - 1))]
    # Sizes too alike to separate latency from throughput: large loads are mostly
    # throughput, small ones mostly latency.
    latency = 0.0 if x_large >= MIN_THROUGHPUT_BYTES else floor
    if x_large >= 1.5 * x_small:
        slope = (_median([s for _, s in large]) - _median([s for _, s in small])) / (
            x_large - x_small
        )
        if slope > 0:
            intercept = _median([s - slope * b for b, s in points])
            latency = min(max(intercept, 0.0), floor)
    # Throughput only from the largest loads: small ones are latency-bound and would
    # make the store look slow (a metrics file of 89 bytes read in 0.3 ms is not 300 KB/s).
    if x_large < MIN_THROUGHPUT_BYTES:
        return default, latency
    rates = [b / (s - latency) for b, s in (large if len(large) >= 3 else points) if s > latency]
    if not rates:
        return default, latency
    throughput = _median(rates)
    if not math.isfinite(throughput) or throughput <= 0:
        return default, default_latency
    return throughput, latency


# -- helpers -----------------------------------------------------------------------------


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


def _unknown_run(run_id: int, url: str) -> str:
    return (
        f"run {run_id} is not in metadata database {url}; "
        f"start it with MetadataStore.start_run first"
    )


def _unknown_workflow(name: str, known: list[str], url: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(repr(k) for k in sorted(known)) or "none"
    return f"no workflow {name!r} in metadata database {url}{hint}; known workflows: {listed}"


def _version_record(workflow: str, row: Any) -> VersionRecord:
    return VersionRecord(
        workflow=workflow,
        number=row.number,
        digest=row.digest,
        created=row.created,
        dag=json.loads(row.dag_json),
        parent=row.parent_number,
    )


def _node_record(row: Any) -> NodeRecord:
    return NodeRecord(
        name=row.name,
        kind=row.kind,
        fingerprint=row.fingerprint,
        state=row.state,
        compute_seconds=row.compute_seconds,
        load_seconds=row.load_seconds,
        write_seconds=row.write_seconds,
        rows=row.rows,
        bytes=row.bytes,
        materialized=bool(row.materialized),
        reason=row.reason,
    )


def _node_fingerprints(dag: Mapping[str, Any]) -> dict[str, str]:
    """``{name: fingerprint}`` of a compiled DAG's ``nodes`` (a list or a name-keyed map)."""
    nodes = dag.get("nodes", ())
    if isinstance(nodes, Mapping):
        items = [(name, spec) for name, spec in nodes.items()]
    else:
        items = [(spec.get("name"), spec) for spec in nodes if isinstance(spec, Mapping)]
    return {
        str(name): str(spec.get("fingerprint", ""))
        for name, spec in items
        if name is not None and isinstance(spec, Mapping)
    }


def _to_sql(value: float | None) -> float | None:
    # NaN is stored as NULL (SQLite itself turns NaN into NULL); infinities are kept.
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _from_sql(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]
