"""A config's past, by config path: what a tool (the CLI, the agent, a notebook) calls.

Each function opens the config's store and metadata database (as ``helix-tf``
does: ``--store``/``--metadata`` defaults beside the config), reads what runs
recorded and closes them again; none creates a store that no run has written
(a :class:`~helix_tf.errors.StoreError` says so, and how to fix it).

- :func:`workflow_history` — the latest runs, newest first, each with what changed;
- :func:`workflow_versions` — every recorded version, oldest first;
- :func:`workflow_diff` — what changed between two recorded versions;
- :func:`compare_runs` — two recorded runs' metrics side by side, and what changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helix_tf.errors import ConfigError, StoreError
from helix_tf.history._metrics import metric_direction, select_metrics
from helix_tf.history._runs import (
    HistoryEntry,
    RunSummary,
    history_entries,
    recorded_runs,
    summarize_run,
)
from helix_tf.history._versions import VersionDiff, version_diff, workflow_changes

if TYPE_CHECKING:
    from helix_tf.reuse.metadata import MetadataStore, VersionRecord

__all__ = [
    "MetricDelta",
    "RunsComparison",
    "VersionSummary",
    "check_metric_selection",
    "compare_runs",
    "recorded_versions",
    "recorded_workflow",
    "workflow_diff",
    "workflow_history",
    "workflow_versions",
]

log = logging.getLogger(__name__)

Params = Sequence[str] | Mapping[str, Any]
Config = str | os.PathLike[str]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Recorded:
    """A config's workflow name and the metadata database its runs recorded into."""

    metadata: MetadataStore
    name: str


@contextlib.contextmanager
def _opened(
    config: Config,
    params: Params,
    data_dir: str | None,
    store: str | None,
    metadata: str | None,
) -> Iterator[_Recorded]:
    """The config's recorded runs, for reading (never creating a store).

    Only the workflow's name is needed, so the config is loaded, not compiled (no data
    file is hashed) and the artifact store is not opened (it may be read-only). What
    runs recorded does not depend on the config as it is now: when it does not load (a
    syntax error after an edit), its workflow is found in the database (see
    :func:`recorded_workflow`), with a warning saying so.
    """
    from helix_tf._session import open_recorded
    from helix_tf.config import load_config

    name: str | None = None
    try:
        name = load_config(config, params, data_dir=data_dir).workflow.name
    except ConfigError as exc:
        broken = exc
    meta = open_recorded(config, store=store, metadata=metadata)
    try:
        if name is None:
            name = recorded_workflow(config, meta, broken)
        yield _Recorded(metadata=meta, name=name)
    finally:
        meta.close()


def recorded_workflow(config: Config, metadata: MetadataStore, broken: ConfigError) -> str:
    """The workflow ``config``'s runs recorded, found while the config does not load
    (``broken``: why not; history, diff and report read what runs recorded without it).

    The workflow recorded from this config path; else the one recorded workflow whose
    name the config's text spells (``Workflow("census")``). Without exactly one, the
    config's own error is raised, saying what was looked for.
    """
    from helix_tf.reuse.metadata import recorded_workflows

    path = str(Path(config).resolve())
    recorded = recorded_workflows(metadata)
    found = [name for name, at in recorded.items() if at == path]
    if not found:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        found = [name for name in recorded if re.search(rf"""["']{re.escape(name)}["']""", text)]
    if len(found) != 1:
        why = (
            f"several workflows were recorded from it ({', '.join(map(repr, found))})"
            if found
            else f"no workflow in {metadata.url} was recorded from it"
        )
        *first, last = broken.problems or [str(broken)]
        raise ConfigError(
            [*first, f"{last} (its recorded runs cannot be shown without it: {why})"],
            path=broken.path,
        ) from broken
    log.warning(
        "%s does not load (%s); showing what the runs of workflow %r recorded",
        path,
        broken,
        found[0],
    )
    return found[0]


def recorded_versions(
    metadata: MetadataStore, workflow: str, *, user: str | None = None
) -> list[VersionRecord]:
    """Every recorded version of ``workflow`` in ``metadata``, oldest first.

    ``user``: only the versions that person recorded (team mode; None: everyone's).
    """
    return metadata.versions(workflow, user=user)


def check_metric_selection(selection: Sequence[str] | None, recorded: set[str]) -> None:
    """Refuse a metric selection item that names none of the runs' metrics.

    (A typo would otherwise show every run with no metrics at all.)

    Raises
    ------
    ConfigError
        Naming the items that select nothing and the metrics there are.
    """
    if not selection or not recorded:
        return
    unknown = [s for s in selection if s.strip() and not select_metrics(sorted(recorded), [s])]
    if unknown:
        raise ConfigError(
            f"--metrics: {', '.join(map(repr, unknown))} names no metric of these runs; "
            f"they have: {', '.join(sorted(recorded))} (a base name such as 'auc' also "
            "selects its slices; globs like 'auc*' work)"
        )


def workflow_history(
    config: Config,
    *,
    limit: int | None = None,
    agent: bool = False,
    metrics: Sequence[str] | None = None,
    user: str | None = None,
    params: Params = (),
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
) -> list[HistoryEntry]:
    """The latest ``limit`` runs of ``config``'s workflow, newest first (``helix-tf history``).

    Each entry lists what changed since the run before it; tagged runs (the agent's)
    only with ``agent=True``. ``metrics`` is checked against the runs' metrics (see
    :func:`check_metric_selection`); pass it on to :meth:`HistoryEntry.to_dict`.
    ``user``: only that person's runs (team mode; None: everyone's).
    """
    with _opened(config, params, data_dir, store, metadata) as session:
        entries = history_entries(
            session.metadata, session.name, limit=limit, agent=agent, user=user
        )
    check_metric_selection(metrics, {k for e in entries for k in e.run.metrics})
    return entries


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VersionSummary:
    """One recorded version of a workflow: one distinct compiled DAG."""

    workflow: str
    number: int
    digest: str
    #: When it was first recorded (seconds since the epoch).
    created: float
    #: The version it followed (None for the first).
    parent: int | None
    approx: bool
    validation: bool
    #: Its compiled DAG (``CompiledWorkflow.to_dict()``).
    dag: dict[str, Any] = dataclasses.field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def workflow_versions(
    config: Config,
    *,
    params: Params = (),
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
) -> list[VersionSummary]:
    """Every recorded version of ``config``'s workflow, oldest first."""
    from helix_tf.validation import is_validation_dag

    with _opened(config, params, data_dir, store, metadata) as session:
        records = recorded_versions(session.metadata, session.name)
    return [
        VersionSummary(
            workflow=v.workflow,
            number=v.number,
            digest=v.digest,
            created=v.created,
            parent=v.parent,
            approx=v.dag.get("approx") is not None,
            validation=is_validation_dag(v.dag),
            dag=v.dag,
        )
        for v in records
    ]


def workflow_diff(
    config: Config,
    old: int | None = None,
    new: int | None = None,
    *,
    user: str | None = None,
    params: Params = (),
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
) -> VersionDiff:
    """What changed from version ``old`` to version ``new`` of ``config``'s workflow.

    ``new`` defaults to the latest version, ``old`` to the one ``new`` followed
    (see :func:`~helix_tf.history.version_diff`, which raises when there is none).
    ``user``: only that person's versions count as "latest" and "followed" (team mode;
    None: everyone's).
    """
    with _opened(config, params, data_dir, store, metadata) as session:
        return version_diff(session.metadata, session.name, old, new, user=user)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MetricDelta:
    """One metric in two runs: its values, the change, and whether it is better."""

    name: str
    old: float | None
    new: float | None
    #: ``"higher"`` or ``"lower"`` is better; None for plain counts.
    direction: str | None

    @property
    def delta(self) -> float | None:
        """``new - old``; None when either run lacks the metric."""
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def better(self) -> bool | None:
        """Whether ``new`` is strictly better than ``old``; None without both or a direction."""
        d = self.delta
        if d is None or self.direction is None or math.isnan(d):
            return None
        return d > 0 if self.direction == "higher" else d < 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "old": self.old,
            "new": self.new,
            "direction": self.direction,
            "delta": self.delta,
            "better": self.better,
        }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunsComparison:
    """Two recorded runs of one workflow: their metrics side by side, and what changed."""

    old: RunSummary
    new: RunSummary
    #: Every metric of either run, in name order.
    metrics: tuple[MetricDelta, ...]
    #: What changed from the old run's version to the new one's (empty: same version).
    changes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old.to_dict(),
            "new": self.new.to_dict(),
            "metrics": [m.to_dict() for m in self.metrics],
            "changes": list(self.changes),
        }


def compare_runs(
    config: Config,
    old: int,
    new: int,
    *,
    params: Params = (),
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
) -> RunsComparison:
    """Runs ``old`` and ``new`` of ``config``'s workflow: each metric's change, what changed.

    Raises
    ------
    StoreError
        When either run is not a recorded run of the workflow (the message lists those
        that are).
    """
    from helix_tf.validation import is_validation_dag

    with _opened(config, params, data_dir, store, metadata) as session:
        name = session.name
        records = {r.id: r for r in recorded_runs(session.metadata, name, agent=True)}
        missing = [i for i in (old, new) if i not in records]
        if missing:
            known = ", ".join(str(i) for i in sorted(records)) or "none"
            raise StoreError(
                f"run {missing[0]} is not a recorded run of workflow {name!r}; "
                f"its runs are: {known}"
            )
        a, b = records[old], records[new]
        dags = {v.number: v.dag for v in recorded_versions(session.metadata, name)}
    changes = () if a.version == b.version else workflow_changes(dags[a.version], dags[b.version])
    keys = sorted(a.metrics.keys() | b.metrics.keys())
    return RunsComparison(
        old=summarize_run(a, validation=is_validation_dag(dags.get(a.version, {}))),
        new=summarize_run(b, validation=is_validation_dag(dags.get(b.version, {}))),
        metrics=tuple(
            MetricDelta(
                name=k, old=a.metrics.get(k), new=b.metrics.get(k), direction=metric_direction(k)
            )
            for k in keys
        ),
        changes=changes,
    )
