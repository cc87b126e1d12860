"""The run log: runs (who ran them, where, how they ended) and their metrics."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from helix_tf.errors import StoreError
from helix_tf.identity import current_host
from helix_tf.reuse.metadata._database import (
    Database,
    chunks,
    ensure_workflow,
    unknown_run,
    workflow_id,
)
from helix_tf.reuse.metadata._records import RUN_STATUSES, NodeRecord, RunRecord, _node_record
from helix_tf.reuse.store import pid_scope, process_alive, process_start

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)


class RunLog:
    """Starting and finishing runs, and reading them back with their nodes and metrics."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def start(
        self,
        workflow: str,
        version: int,
        *,
        approx: bool,
        policy: str,
        store_url: str,
        params: Mapping[str, Any],
        user: str | None = None,
        host: str | None = None,
    ) -> int:
        """Record the start of a run (status ``"running"``) and return its id."""
        params_json = json.dumps(dict(params), sort_keys=True, default=str)
        db = self._db

        def write(conn: Connection) -> int:
            wid = ensure_workflow(db, conn, workflow, None)
            result = conn.execute(
                db.tables.runs.insert().values(
                    workflow_id=wid,
                    version_number=version,
                    started=db.clock(),
                    status="running",
                    approx=approx,
                    policy=policy,
                    store_url=store_url,
                    params_json=params_json,
                    process=_this_process(),
                    user_name=user,
                    host_name=host if host is not None else current_host(),
                )
            )
            key = result.inserted_primary_key
            assert key is not None  # an INSERT always has one
            return int(key[0])

        run_id = db.write(write, f"start a run of workflow {workflow!r}")
        logger.debug("workflow %r version %d: run %d started", workflow, version, run_id)
        return run_id

    def finish(
        self,
        run_id: int,
        *,
        status: str,
        wall_seconds: float,
        metrics: Mapping[str, float],
        intervals: Mapping[str, tuple[float, float]] | None = None,
        error: str | None = None,
    ) -> None:
        """Record the end of run ``run_id``: its status, wall time and metrics."""
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"status must be one of {RUN_STATUSES[1:]}, but got {status!r}")
        rows = _metric_rows(run_id, metrics, dict(intervals or {}))
        db = self._db
        runs, table = db.tables.runs, db.tables.metrics

        def write(conn: Connection) -> None:
            if conn.execute(db.sa.select(runs.c.id).where(runs.c.id == run_id)).first() is None:
                raise StoreError(unknown_run(run_id, db.url))
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(
                    finished=db.clock(),
                    wall_seconds=float(wall_seconds),
                    status=status,
                    error=error,
                )
            )
            conn.execute(table.delete().where(table.c.run_id == run_id))
            if rows:
                conn.execute(table.insert(), rows)

        db.write(write, f"finish run {run_id}")
        logger.debug("run %d finished: %s in %.3f s", run_id, status, wall_seconds)

    def mark_killed(
        self,
        run_ids: Sequence[int],
        *,
        error: str = "its process ended before the run finished",
    ) -> None:
        """Record that runs still marked ``"running"`` lost their process (status ``"killed"``).

        ``error`` says why (kept as the run's error).
        """
        runs = self._db.tables.runs
        ids = list(run_ids)
        if not ids:
            return

        def write(conn: Connection) -> None:
            for chunk in chunks(ids):
                conn.execute(
                    runs.update()
                    .where(runs.c.id.in_(chunk), runs.c.status == "running")
                    .values(status="killed", error=error)
                )

        self._db.write(write, f"mark runs {ids} killed")

    def read(
        self,
        workflow: str,
        *,
        limit: int | None = None,
        with_nodes: bool = True,
        user: str | None = None,
    ) -> list[RunRecord]:
        """Runs of ``workflow``, newest first (only ``user``'s when given)."""
        db = self._db
        t = db.tables

        def read(conn: Connection) -> list[RunRecord]:
            wid = workflow_id(db, conn, workflow)
            if wid is None:
                return []
            query = db.sa.select(t.runs).where(t.runs.c.workflow_id == wid)
            if user is not None:
                query = query.where(
                    db.sa.or_(t.runs.c.user_name == user, t.runs.c.user_name.is_(None))
                )
            run_rows = list(conn.execute(query.order_by(t.runs.c.id.desc()).limit(limit)))
            nodes, metrics, intervals = self._details(
                conn, [row.id for row in run_rows], with_nodes
            )
            return [_run_record(workflow, row, nodes, metrics, intervals) for row in run_rows]

        return db.read(read, f"read the runs of workflow {workflow!r}")

    def _details(
        self, conn: Connection, ids: list[int], with_nodes: bool
    ) -> tuple[
        dict[int, list[NodeRecord]],
        dict[int, dict[str, float]],
        dict[int, dict[str, tuple[float, float]]],
    ]:
        """The nodes, metrics and metric intervals of runs ``ids``, by run id."""
        sa, t = self._db.sa, self._db.tables
        nodes: dict[int, list[NodeRecord]] = {}
        metrics: dict[int, dict[str, float]] = {}
        intervals: dict[int, dict[str, tuple[float, float]]] = {}
        for chunk in chunks(ids):
            nr, m = t.node_runs, t.metrics
            q = sa.select(nr).where(nr.c.run_id.in_(chunk)).order_by(nr.c.id)
            for row in conn.execute(q) if with_nodes else ():
                nodes.setdefault(row.run_id, []).append(_node_record(row))
            q = sa.select(m).where(m.c.run_id.in_(chunk)).order_by(m.c.id)
            for row in conn.execute(q):
                metrics.setdefault(row.run_id, {})[row.name] = _from_sql(row.value)
                if row.lower is not None or row.upper is not None:
                    interval = (_from_sql(row.lower), _from_sql(row.upper))
                    intervals.setdefault(row.run_id, {})[row.name] = interval
        return nodes, metrics, intervals


def _metric_rows(
    run_id: int, metrics: Mapping[str, float], intervals: Mapping[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    stray = sorted(set(intervals) - set(metrics))
    if stray:
        raise ValueError(
            f"intervals must be for metrics of the run, but got {stray} "
            f"not in metrics {sorted(metrics)}"
        )
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
    return rows


def _run_record(
    workflow: str,
    row: Any,
    nodes: Mapping[int, list[NodeRecord]],
    metrics: Mapping[int, dict[str, float]],
    intervals: Mapping[int, dict[str, tuple[float, float]]],
) -> RunRecord:
    return RunRecord(
        id=row.id,
        workflow=workflow,
        version=row.version_number,
        started=row.started,
        finished=row.finished,
        wall_seconds=row.wall_seconds,
        status=_status(row.status, row.process),
        approx=bool(row.approx),
        policy=row.policy,
        metrics=metrics.get(row.id, {}),
        nodes=tuple(nodes.get(row.id, ())),
        error=row.error,
        params=json.loads(row.params_json),
        intervals=intervals.get(row.id, {}),
        store_url=row.store_url,
        user=row.user_name or "",
        host=row.host_name or "",
    )


def _this_process() -> str:
    """``"host pid start scope"`` of this process (``runs.process``)."""
    pid = os.getpid()
    return f"{current_host()} {pid} {process_start(pid)} {pid_scope() or '-'}"


def _status(status: str, process: str | None) -> str:
    """A ``"running"`` run whose process is gone reads as ``"killed"``.

    Its pid is checked only where it names a process here: the same host name and,
    where recorded, the same pid scope (boot id and pid namespace; containers and
    cloned machines share host names). Elsewhere (a colleague's machine) the run
    reads as recorded.
    """
    if status != "running" or not process:
        return status
    host, pid, start, scope = [*process.split(" "), "", "", ""][:4]
    if host != current_host() or not pid.isdigit():
        return status
    if scope not in ("", "-") and scope != pid_scope():
        return status
    alive = process_alive(int(pid), int(start) if start.isdigit() else None)
    return status if alive else "killed"


def _to_sql(value: float | None) -> float | None:
    # NaN is stored as NULL (SQLite itself turns NaN into NULL); infinities are kept.
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _from_sql(value: float | None) -> float:
    return math.nan if value is None else float(value)
