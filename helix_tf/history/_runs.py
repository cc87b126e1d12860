"""Recorded runs: who ran them, the history table, a run against the runs before it.

Terms: a **version** is one distinct compiled workflow (``v3``); every change of an
operator, parameter or data file makes a new one, and an unchanged rerun keeps the
number. A **run** is one execution (``run 17``); run ids count every run of every
version (and of every workflow in the same metadata database).

Every function here reads runs through :func:`recorded_runs`, the one place that
decides which runs are the user's (untagged) and which are a tool's (tagged, e.g. the
agent's).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from helix_tf.history._metrics import RunComparison, compare_metrics, select_metrics
from helix_tf.history._versions import workflow_changes
from helix_tf.roles import state_counts

if TYPE_CHECKING:
    from helix_tf.reuse.metadata import MetadataStore, RunRecord

__all__ = [
    "TAG_KEY",
    "RunSummary",
    "HistoryEntry",
    "tag_of",
    "recorded_runs",
    "runs",
    "summarize_run",
    "history_entries",
    "compare_with_history",
    "record_killed_runs",
]

#: The key under which a run's tag (e.g. ``"agent"``) is kept with its parameters.
#: Tagged runs are not the user's: comparisons and ``history`` leave them out unless
#: asked (``history --agent``).
TAG_KEY = "@tag"


def tag_of(run: RunRecord) -> str | None:
    """The tag a run was recorded with (``"agent"``), None for a user's run."""
    return run.params.get(TAG_KEY)


def recorded_runs(
    metadata: MetadataStore,
    workflow: str,
    *,
    agent: bool = False,
    limit: int | None = None,
    with_nodes: bool = True,
    user: str | None = None,
) -> list[RunRecord]:
    """The latest ``limit`` runs of ``workflow``, newest first; tagged ones only with ``agent``.

    ``user``: only that person's runs (team mode; None: everyone's).
    """
    if agent:
        return metadata.runs(workflow, limit=limit, with_nodes=with_nodes, user=user)
    untagged = [
        r for r in metadata.runs(workflow, with_nodes=with_nodes, user=user) if tag_of(r) is None
    ]
    return untagged if limit is None else untagged[:limit]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """One recorded run: its version, ``-p`` overrides, tag, metrics and time."""

    run: int
    version: int
    status: str
    approx: bool
    validation: bool
    params: dict[str, Any]
    tag: str | None
    metrics: dict[str, float]
    wall_seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def runs(
    config: str | os.PathLike[str],
    *,
    agent: bool = False,
    limit: int | None = None,
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
) -> list[RunSummary]:
    """The runs of ``config``'s workflow, oldest first; tagged runs only with ``agent=True``."""
    from helix_tf import api
    from helix_tf.validation import is_validation_dag

    session = api.open_session(config, data_dir=data_dir, store=store, metadata=metadata)
    try:
        name = session.compiled.name
        records = recorded_runs(
            session.metadata, name, agent=agent, limit=limit or None, with_nodes=False
        )
        validation = {v.number: is_validation_dag(v.dag) for v in session.metadata.versions(name)}
    finally:
        session.close()
    return [
        summarize_run(r, validation=validation.get(r.version, False))
        for r in reversed(records)  # the database lists newest first
    ]


def summarize_run(run: RunRecord, *, validation: bool) -> RunSummary:
    """A recorded run as a :class:`RunSummary` (``validation``: its version's kind)."""
    return RunSummary(
        run=run.id,
        version=run.version,
        status=run.status,
        approx=run.approx,
        validation=validation,
        params={k: v for k, v in run.params.items() if k != TAG_KEY},
        tag=tag_of(run),
        metrics=dict(run.metrics),
        wall_seconds=run.wall_seconds,
    )


def record_killed_runs(
    config: str | os.PathLike[str],
    *,
    tag: str | None,
    reason: str,
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
) -> list[int]:
    """Record the runs of ``config`` tagged ``tag`` whose process is gone as killed, for ``reason``.

    A run whose process was killed (a trial the agent stopped when a user's run
    started, or an agent killed outright) is still ``"running"`` in the database;
    reading it on this machine shows ``"killed"``, and this records it so, with
    ``reason`` as its error (``history --agent`` shows it). Runs whose process is
    alive, and runs of another tag, are left alone. Returns the ids recorded.
    """
    from helix_tf import api

    session = api.open_session(config, data_dir=data_dir, store=store, metadata=metadata)
    try:
        md = session.metadata
        dead = [
            r.id
            for r in recorded_runs(md, session.compiled.name, agent=True, with_nodes=False)
            if r.status == "killed" and r.error is None and tag_of(r) == tag
        ]
        md.mark_killed(dead, error=reason)
    finally:
        session.close()
    return dead


def _ok_runs(runs: Sequence[RunRecord], approx: bool, before: int | None) -> list[RunRecord]:
    return sorted(
        (
            r
            for r in runs
            if r.status == "ok" and r.approx == approx and (before is None or r.id < before)
        ),
        key=lambda r: r.id,
    )


def compare_with_history(
    metadata: MetadataStore,
    workflow: str,
    *,
    version: int,
    run_id: int | None,
    approx: bool,
    metrics: Mapping[str, float],
    dag: Mapping[str, Any],
    user: str | None = None,
) -> RunComparison:
    """Compare a run (finished or about to be reported) with the runs recorded before it.

    ``metadata`` is a :class:`~helix_tf.reuse.metadata.MetadataStore`; ``dag`` the
    run's compiled workflow (``CompiledWorkflow.to_dict()``). ``user``: compare with
    that person's runs only (a person's previous version stays their own in a team's
    database); None: with everyone's.
    """
    runs = recorded_runs(metadata, workflow, with_nodes=False, user=user)
    earlier = _ok_runs(runs, approx, run_id)
    changes, previous = compare_metrics(metrics, earlier, version=version)
    lines: tuple[str, ...] = ()
    if previous is not None:
        lines = workflow_changes(metadata.version(workflow, previous.version).dag, dag)
    return RunComparison(
        version=version,
        run_id=run_id,
        approx=approx,
        previous_version=previous.version if previous is not None else None,
        previous_run=previous.id if previous is not None else None,
        metrics=changes,
        changes=lines,
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One run in ``history``, with what changed since the version before it."""

    run: RunRecord
    #: The version this run's version is compared with (its predecessor among the
    #: runs shown); None for the first, or for a rerun of the same version.
    changed_from: int | None
    changes: tuple[str, ...]

    def state_counts(self) -> dict[str, int]:
        """How many of the run's nodes were computed, loaded and pruned."""
        return state_counts(n.state for n in self.run.nodes)

    def to_dict(self, selection: Sequence[str] | None = None) -> dict[str, Any]:
        r = self.run
        keys = select_metrics(sorted(r.metrics), selection)
        out: dict[str, Any] = {
            "run": r.id,
            "version": r.version,
            "status": r.status,
            "approx": r.approx,
            "wall_seconds": r.wall_seconds,
            "metrics": {k: r.metrics[k] for k in keys},
            "states": self.state_counts(),
            "changed_from": self.changed_from,
            "changes": list(self.changes),
            "params": r.params,
            "user": r.user,
            "host": r.host,
        }
        if r.intervals:
            from helix_tf.results import INTERVAL_KIND

            out["intervals"] = {k: list(v) for k, v in r.intervals.items() if k in keys}
            out["interval_kind"] = INTERVAL_KIND
        if r.error:
            out["error"] = r.error
        return out


def history_entries(
    metadata: MetadataStore,
    workflow: str,
    *,
    limit: int | None = None,
    agent: bool = False,
    user: str | None = None,
) -> list[HistoryEntry]:
    """The latest ``limit`` runs, newest first, each with what changed since the run before.

    A run of a version that differs from the version of the run before it (in run
    order, any kind) lists that version's changes; a rerun of the same version
    lists none. Tagged runs (the agent's) only with ``agent=True``; only ``user``'s
    runs when given (``history --mine``).
    """
    runs = recorded_runs(
        metadata, workflow, agent=agent, limit=None if limit is None else limit + 1, user=user
    )
    ordered = sorted(runs, key=lambda r: r.id)
    dags: dict[int, Mapping[str, Any]] = {}

    def dag(number: int) -> Mapping[str, Any]:
        if number not in dags:
            dags[number] = metadata.version(workflow, number).dag
        return dags[number]

    entries = []
    for before, run in zip([None, *ordered], ordered, strict=False):
        if before is None or before.version == run.version:
            entries.append(HistoryEntry(run=run, changed_from=None, changes=()))
            continue
        entries.append(
            HistoryEntry(
                run=run,
                changed_from=before.version,
                changes=workflow_changes(dag(before.version), dag(run.version)),
            )
        )
    entries.reverse()
    return entries[:limit] if limit is not None else entries
