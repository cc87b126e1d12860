"""The run log: runs, what happened to each node in them, and their metrics."""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from helix_tf.errors import StoreError
from helix_tf.reuse.metadata._database import _Database
from helix_tf.reuse.metadata._records import (
    NODE_STATES,
    RUN_STATUSES,
    NodeRecord,
    RunRecord,
    _node_record,
)
from helix_tf.reuse.store._leases import process_alive, process_start

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)

_CHUNK = 500  # bound on the parameters of one ``IN (...)``; old SQLite allows 999
_T = TypeVar("_T")


class _Runs(_Database):
    """Recording runs and reading them back: the run log of :class:`MetadataStore`."""

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
                    process=_this_process(),
                )
            )
            key = result.inserted_primary_key
            assert key is not None  # an INSERT always has one
            return int(key[0])

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

    def mark_killed(
        self,
        run_ids: Sequence[int],
        *,
        error: str = "its process ended before the run finished",
    ) -> None:
        """Record that runs still marked ``"running"`` lost their process (status ``"killed"``).

        ``error`` says why (kept as the run's error).
        """
        runs = self._t.runs
        ids = list(run_ids)
        if not ids:
            return

        def write(conn: Connection) -> None:
            for chunk in _chunks(ids):
                conn.execute(
                    runs.update()
                    .where(runs.c.id.in_(chunk), runs.c.status == "running")
                    .values(status="killed", error=error)
                )

        self._write(write, f"mark runs {ids} killed")

    def runs(
        self, workflow: str, *, limit: int | None = None, with_nodes: bool = True
    ) -> list[RunRecord]:
        """Runs of ``workflow``, newest first, each with its nodes and metrics.

        ``with_nodes=False`` leaves every run's ``nodes`` empty (one query less per
        chunk: comparing metrics over a long history needs only the metrics).
        """
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
                for row in conn.execute(q) if with_nodes else ():
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
                    status=_status(row.status, row.process),
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


def _this_process() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()} {pid} {process_start(pid)}"


def _status(status: str, process: str | None) -> str:
    """A ``"running"`` run whose process (on this host) is gone reads as ``"killed"``."""
    if status != "running" or not process:
        return status
    host, _, rest = process.partition(" ")
    pid, _, start = rest.partition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return status
    alive = process_alive(int(pid), int(start) if start.isdigit() else None)
    return status if alive else "killed"


def _unknown_run(run_id: int, url: str) -> str:
    return (
        f"run {run_id} is not in metadata database {url}; "
        f"start it with MetadataStore.start_run first"
    )


def _to_sql(value: float | None) -> float | None:
    # NaN is stored as NULL (SQLite itself turns NaN into NULL); infinities are kept.
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _from_sql(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]
