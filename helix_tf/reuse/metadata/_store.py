"""The metadata database: workflow versions, runs, node measurements and metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helix_tf.errors import StoreError
from helix_tf.reuse.metadata._fit import fit_load_throughput
from helix_tf.reuse.metadata._records import (
    NodeRecord,
    VersionRecord,
    _node_record,
    _version_record,
)
from helix_tf.reuse.metadata._runs import _Runs
from helix_tf.reuse.metadata._schema import _tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)


class MetadataStore(_Runs):
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

    # -- workflows and versions ----------------------------------------------------------

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

    def node_names(self) -> dict[str, list[tuple[str, int, str]]]:
        """Which (workflow, version, node name) each fingerprint stood for, by fingerprint.

        Over every recorded version of every workflow (``helix-tf store du`` names the
        store's entries with it).
        """
        v, w = self._t.versions, self._t.workflows

        def read(conn: Connection) -> dict[str, list[tuple[str, int, str]]]:
            query = self._sa.select(w.c.name, v.c.number, v.c.dag_json).join(
                w, w.c.id == v.c.workflow_id
            )
            out: dict[str, list[tuple[str, int, str]]] = {}
            for name, number, dag_json in conn.execute(query.order_by(w.c.name, v.c.number)):
                for node, fp in _node_fingerprints(json.loads(dag_json)).items():
                    out.setdefault(fp, []).append((name, int(number), node))
            return out

        return self._read(read, "read the node names of every version")

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


def _unknown_workflow(name: str, known: list[str], url: str) -> str:
    from helix_tf.errors import did_you_mean

    hint = did_you_mean(name, known)
    listed = ", ".join(repr(k) for k in sorted(known)) or "none"
    return f"no workflow {name!r} in metadata database {url}{hint}; known workflows: {listed}"


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
