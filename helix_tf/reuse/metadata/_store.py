"""The metadata database's front: one object over the version, run and node logs."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from helix_tf.reuse.metadata._database import Database
from helix_tf.reuse.metadata._migrate import ensure_schema
from helix_tf.reuse.metadata._nodes import NodeLog
from helix_tf.reuse.metadata._records import NodeRecord, RunRecord, VersionRecord
from helix_tf.reuse.metadata._runs import RunLog
from helix_tf.reuse.metadata._versions import VersionLog


class _Closing(abc.ABC):
    """The ``with`` protocol of an object released by ``close()`` (as ``contextlib.closing``)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the object holds."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class MetadataStore(_Closing):
    """Workflow versions, runs, per-node measurements and metrics in one SQL database.

    The work is done by small parts, each with one job, that share one
    :class:`~helix_tf.reuse.metadata._database.Database` (engine and transactions):
    :class:`VersionLog` (compiled DAGs), :class:`RunLog` (runs, metrics) and
    :class:`NodeLog` (node measurements, the cost model's history). This class is
    their front for the rest of helix_tf.

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
        When the URL is invalid, the database cannot be opened or created (the
        message names the URL, its password hidden), or it was written by a newer
        helix_tf.

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
        self._db = Database(url, clock=clock)
        self.url = self._db.url
        try:
            ensure_schema(self._db)
        except BaseException:
            self._db.close()
            raise
        self._versions = VersionLog(self._db)
        self._runs = RunLog(self._db)
        self._nodes = NodeLog(self._db)

    # -- workflow versions ----------------------------------------------------------------

    def record_version(
        self,
        workflow: str,
        config_path: str,
        dag: dict[str, Any],
        digest: str,
        *,
        user: str | None = None,
    ) -> int:
        """Record a compiled DAG and return its version number.

        A digest seen before for this workflow returns that version's number; a new
        one gets the next number, with the latest version as its parent. ``user`` is
        who recorded it (team mode).
        """
        return self._versions.record(workflow, config_path, dag, digest, user=user)

    def versions(self, workflow: str, *, user: str | None = None) -> list[VersionRecord]:
        """Every version of ``workflow``, oldest first (``[]`` for an unknown workflow).

        ``user`` keeps the versions that person recorded or ran (a person's own
        "previous version" in a team's database); versions of databases older than
        team mode name nobody and are kept for everyone.
        """
        return self._versions.all(workflow, user=user)

    def version(self, workflow: str, number: int) -> VersionRecord:
        """Version ``number`` of ``workflow``.

        Raises
        ------
        StoreError
            When it was never recorded; the message lists the versions that were.
        """
        return self._versions.one(workflow, number)

    def node_names(self) -> dict[str, list[tuple[str, int, str]]]:
        """Which (workflow, version, node name) each fingerprint stood for, by fingerprint.

        Over every recorded version of every workflow (``helix-tf store du`` names the
        store's entries with it).
        """
        return self._versions.node_names()

    def change_counts(self, workflow: str) -> dict[str, tuple[int, int]]:
        """Per node name: ``(versions in which its fingerprint changed, versions it is in)``.

        A node's fingerprint in a version is compared with its fingerprint in the
        latest earlier version that contained it; its first appearance is not a
        change. ``1 - changed / (appeared - 1)`` estimates the probability that the
        node's artifact is still valid after the next edit. Every person's versions
        count (team mode shares the history).
        """
        return self._versions.change_counts(workflow)

    # -- runs -----------------------------------------------------------------------------

    def start_run(
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
        """Record the start of a run (status ``"running"``) and return its id.

        ``params`` are stored as JSON; values JSON cannot hold are stored as text.
        ``user`` and ``host`` say who ran it where (``host`` defaults to this host).
        """
        return self._runs.start(
            workflow,
            version,
            approx=approx,
            policy=policy,
            store_url=store_url,
            params=params,
            user=user,
            host=host,
        )

    def record_nodes(self, run_id: int, nodes: Sequence[NodeRecord]) -> None:
        """Record what happened to ``nodes`` in run ``run_id``.

        May be called several times per run; a node recorded again replaces its
        earlier record.
        """
        self._nodes.record(run_id, nodes)

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
        self._runs.finish(
            run_id,
            status=status,
            wall_seconds=wall_seconds,
            metrics=metrics,
            intervals=intervals,
            error=error,
        )

    def mark_killed(
        self,
        run_ids: Sequence[int],
        *,
        error: str = "its process ended before the run finished",
    ) -> None:
        """Record that runs still marked ``"running"`` lost their process (status ``"killed"``).

        ``error`` says why (kept as the run's error).
        """
        self._runs.mark_killed(run_ids, error=error)

    def runs(
        self,
        workflow: str,
        *,
        limit: int | None = None,
        with_nodes: bool = True,
        user: str | None = None,
    ) -> list[RunRecord]:
        """Runs of ``workflow``, newest first, each with its nodes and metrics.

        ``with_nodes=False`` leaves every run's ``nodes`` empty (one query less per
        chunk: comparing metrics over a long history needs only the metrics).
        ``user`` keeps that person's runs (and those of databases older than team
        mode, which name nobody).
        """
        return self._runs.read(workflow, limit=limit, with_nodes=with_nodes, user=user)

    # -- the cost model's history (everyone's) ----------------------------------------------

    def last_compute(
        self, workflow: str, name: str, *, approx: bool | None = None
    ) -> NodeRecord | None:
        """The latest record of node ``name`` computed in a run of ``workflow``.

        ``approx`` restricts it to approximate (``True``) or exact (``False``) runs;
        ``None`` takes the newer of the two. Whoever ran it.
        """
        return self._nodes.last_compute(workflow, name, approx=approx)

    def compute_history(
        self, workflow: str, *, approx: bool | None = None
    ) -> dict[str, NodeRecord]:
        """:meth:`last_compute` for every node name of ``workflow``, in one query.

        It reads one row per node name (and kind of run), however long the history.
        """
        return self._nodes.compute_history(workflow, approx=approx)

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
        return self._nodes.load_throughput(
            default=default, default_latency=default_latency, store_url=store_url, window=window
        )

    def close(self) -> None:
        """Release the database connections (the store cannot be used afterwards)."""
        self._db.close()


def recorded_workflows(metadata: MetadataStore) -> dict[str, str]:
    """Every workflow recorded in ``metadata``: its name and the config path it was last
    recorded from (``helix-tf history`` and ``diff`` find a config's workflow here when
    the config no longer loads)."""
    return metadata._versions.workflows()
