"""The node log: what happened to each node in each run, and the cost model's history.

The history is the whole team's: compute times and load throughput are read from
every run in the database, whoever ran it (team mode shares one database).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from helix_tf.errors import StoreError
from helix_tf.reuse.metadata._database import Database, chunks, unknown_run
from helix_tf.reuse.metadata._fit import fit_load_throughput
from helix_tf.reuse.metadata._records import NODE_STATES, NodeRecord, _node_record
from helix_tf.roles import NodeState

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


class NodeLog:
    """Recording nodes' measurements; the newest compute of each node; load throughput."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, run_id: int, nodes: Sequence[NodeRecord]) -> None:
        """Record what happened to ``nodes`` in run ``run_id`` (a node again replaces it)."""
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
        rows = [_node_row(run_id, node) for node in nodes]
        computed = [node.name for node in nodes if node.state == NodeState.COMPUTE]
        db = self._db
        sa, runs, latest, table = (
            db.sa,
            db.tables.runs,
            db.tables.latest_compute,
            db.tables.node_runs,
        )

        def write(conn: Connection) -> None:
            run = conn.execute(
                sa.select(runs.c.workflow_id, runs.c.approx).where(runs.c.id == run_id)
            ).first()
            if run is None:
                raise StoreError(unknown_run(run_id, db.url))
            stale: set[str] = set()  # names whose latest compute is being replaced
            for chunk in chunks(names):
                old = sa.select(table.c.id).where(table.c.run_id == run_id, table.c.name.in_(chunk))
                found = conn.execute(sa.select(latest.c.name).where(latest.c.node_run_id.in_(old)))
                stale.update(found.scalars())
                conn.execute(latest.delete().where(latest.c.node_run_id.in_(old)))
                conn.execute(table.delete().where(table.c.id.in_(old)))
            conn.execute(table.insert(), rows)
            newest = self._newest(conn, run_id, run.workflow_id, run.approx, computed, stale)
            self._point_latest(conn, run.workflow_id, run.approx, newest)

        db.write(write, f"record the nodes of run {run_id}")

    def _newest(
        self,
        conn: Connection,
        run_id: int,
        workflow_id: int,
        approx: bool,
        computed: Sequence[str],
        stale: set[str],
    ) -> dict[str, int]:
        """The newest 'compute' row of each name computed now or whose latest was replaced."""
        sa, nr, runs = self._db.sa, self._db.tables.node_runs, self._db.tables.runs
        newest: dict[str, int] = {}
        for chunk in chunks(computed):
            query = sa.select(nr.c.name, nr.c.id).where(nr.c.run_id == run_id, nr.c.name.in_(chunk))
            newest.update((name, node_run_id) for name, node_run_id in conn.execute(query))
        replaced = sorted(stale - set(newest))  # recomputed, then re-recorded as load/prune
        for chunk in chunks(replaced):
            query = (
                sa.select(nr.c.name, sa.func.max(nr.c.id))
                .join(runs, runs.c.id == nr.c.run_id)
                .where(
                    runs.c.workflow_id == workflow_id,
                    runs.c.approx == approx,
                    nr.c.state == NodeState.COMPUTE.value,
                    nr.c.name.in_(chunk),
                )
                .group_by(nr.c.name)
            )
            newest.update((name, node_run_id) for name, node_run_id in conn.execute(query))
        return newest

    def _point_latest(
        self, conn: Connection, workflow_id: int, approx: bool, newest: dict[str, int]
    ) -> None:
        """Point ``latest_compute`` at ``newest`` rows (a concurrent newer run's row wins)."""
        if not newest:
            return
        sa, latest = self._db.sa, self._db.tables.latest_compute
        key = (latest.c.workflow_id == workflow_id, latest.c.approx == approx)
        existing: dict[str, int] = {}
        for chunk in chunks(sorted(newest)):
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
            if name in existing and existing[name] < new:
                conn.execute(
                    latest.update().where(*key, latest.c.name == name).values(node_run_id=new)
                )

    def last_compute(
        self, workflow: str, name: str, *, approx: bool | None = None
    ) -> NodeRecord | None:
        """The latest record of node ``name`` computed in a run of ``workflow``."""
        query = self._latest_query(workflow, approx).where(
            self._db.tables.latest_compute.c.name == name
        )

        def read(conn: Connection) -> NodeRecord | None:
            rows = list(conn.execute(query))
            return _node_record(max(rows, key=lambda row: row.id)) if rows else None

        return self._db.read(read, f"read the compute history of {workflow!r}.{name}")

    def compute_history(
        self, workflow: str, *, approx: bool | None = None
    ) -> dict[str, NodeRecord]:
        """:meth:`last_compute` for every node name of ``workflow``, in one query."""
        query = self._latest_query(workflow, approx)

        def read(conn: Connection) -> dict[str, NodeRecord]:
            newest: dict[str, Any] = {}
            for row in conn.execute(query):
                if row.name not in newest or newest[row.name].id < row.id:
                    newest[row.name] = row
            return {name: _node_record(row) for name, row in newest.items()}

        return self._db.read(read, f"read the compute history of workflow {workflow!r}")

    def _latest_query(self, workflow: str, approx: bool | None) -> Any:
        t = self._db.tables
        nr, latest, wf = t.node_runs, t.latest_compute, t.workflows
        query = (
            self._db.sa.select(nr)
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
        """``(bytes per second, seconds of latency)`` fitted to the latest ``window`` loads."""
        sa, nr = self._db.sa, self._db.tables.node_runs
        query = sa.select(nr.c.bytes, nr.c.load_seconds).where(
            nr.c.state == NodeState.LOAD.value, nr.c.bytes > 0, nr.c.load_seconds > 0
        )
        if store_url is not None:
            runs = self._db.tables.runs
            query = query.join(runs, runs.c.id == nr.c.run_id).where(runs.c.store_url == store_url)
        query = query.order_by(nr.c.id.desc()).limit(window)

        def read(conn: Connection) -> list[tuple[int, float]]:
            return [(int(b), float(s)) for b, s in conn.execute(query)]

        samples = self._db.read(read, "read the load history")
        return fit_load_throughput(samples, default=default, default_latency=default_latency)


def _node_row(run_id: int, node: NodeRecord) -> dict[str, Any]:
    return {
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
