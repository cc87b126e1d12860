"""Every run compared with the last: metric changes and what changed in the workflow.

Pure functions over metadata records (no TensorFlow, no Beam); the CLI renders
their results, ``--json`` and the Python API return them as data.

Terms: a **version** is one distinct compiled workflow (``v3``); every change of an
operator, parameter or data file makes a new one, and an unchanged rerun keeps the
number. A **run** is one execution (``run 17``); run ids count every run of every
version (and of every workflow in the same metadata database).

Examples
--------
>>> metric_direction("log_loss"), metric_direction("accuracy[sex=Female]")
('lower', 'higher')
>>> select_metrics(["accuracy", "auc", "accuracy[sex=Male]", "log_loss"], ["accuracy"])
['accuracy', 'accuracy[sex=Male]']
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from helix_tf.compiler.diff import diff_versions

__all__ = [
    "TAG_KEY",
    "LOWER_IS_BETTER",
    "MetricChange",
    "RunComparison",
    "HistoryEntry",
    "metric_base",
    "metric_direction",
    "select_metrics",
    "compare_metrics",
    "workflow_changes",
    "compare_with_history",
    "history_entries",
]

#: Base names of metrics where smaller is better (anything else: larger is better,
#: except the confusion-matrix counts, which have no direction).
LOWER_IS_BETTER = frozenset(
    {"log_loss", "loss", "mse", "rmse", "mae", "mape", "brier", "error", "fp", "fn"}
)
_NO_DIRECTION = frozenset({"tp", "tn"})
#: Families of keys ``family/...`` whose values have no better direction: multiclass
#: confusion counts (``confusion/<true>/<predicted>``) and residual summaries.
_NO_DIRECTION_FAMILIES = frozenset({"confusion", "residual"})

#: The key under which a run's tag (e.g. ``"agent"``) is kept with its parameters.
#: Tagged runs are not the user's: comparisons and ``history`` leave them out unless
#: asked (``history --agent``).
TAG_KEY = "@tag"


def metric_base(key: str) -> str:
    """The metric's own name in a key: without evaluate-node prefix, slice or threshold.

    ``"evaluation/accuracy@0.3[sex=Male]"`` → ``"accuracy"``; ``"confusion/fp"`` → ``"fp"``.
    """
    name = key.split("[", 1)[0]
    name = name.rsplit("/", 1)[-1]
    return name.split("@", 1)[0]


def metric_direction(key: str) -> str | None:
    """``"higher"`` or ``"lower"`` is better for metric ``key``; None for plain counts."""
    base = metric_base(key)
    families = {part.split("@", 1)[0] for part in key.split("[", 1)[0].split("/")[:-1]}
    if base in _NO_DIRECTION or (families & _NO_DIRECTION_FAMILIES and base not in LOWER_IS_BETTER):
        return None
    return "lower" if base in LOWER_IS_BETTER else "higher"


def select_metrics(keys: Iterable[str], selection: Sequence[str] | None) -> list[str]:
    """The keys a ``--metrics`` selection names, in the order of ``keys``.

    A selection item matches a key exactly, by the metric's base name (``accuracy``
    also selects ``accuracy[sex=Male]`` and ``evaluation/accuracy``), or as a glob
    (``auc*``). An empty or missing selection selects every key.
    """
    keys = list(keys)
    if not selection:
        return keys
    wanted = [s.strip() for s in selection if s.strip()]
    return [
        k
        for k in keys
        if any(k == s or metric_base(k) == s or fnmatch.fnmatchcase(k, s) for s in wanted)
    ]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MetricChange:
    """One metric of a run against the previous version and the best earlier run."""

    name: str
    value: float
    direction: str | None  # "higher" | "lower" is better, None: no direction
    previous: float | None = None
    previous_version: int | None = None
    best: float | None = None
    best_version: int | None = None
    best_run: int | None = None

    @property
    def delta_previous(self) -> float | None:
        return None if self.previous is None else self.value - self.previous

    @property
    def delta_best(self) -> float | None:
        return None if self.best is None else self.value - self.best

    @property
    def is_new_best(self) -> bool:
        """Better than every earlier run (strictly)."""
        d = self.delta_best
        if d is None or self.direction is None or math.isnan(d):
            return self.best is None and self.direction is not None
        return d > 0 if self.direction == "higher" else d < 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "direction": self.direction,
            "previous": self.previous,
            "previous_version": self.previous_version,
            "delta_previous": self.delta_previous,
            "best": self.best,
            "best_version": self.best_version,
            "best_run": self.best_run,
            "delta_best": self.delta_best,
        }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunComparison:
    """A run against its workflow's history (runs of the same kind: exact or approximate)."""

    version: int
    run_id: int | None
    approx: bool
    #: The version compared with: the latest earlier successful run of another version.
    previous_version: int | None
    previous_run: int | None
    metrics: tuple[MetricChange, ...]
    #: What changed from ``previous_version`` to ``version``: one line per changed
    #: operator or parameter, added or removed node.
    changes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "run_id": self.run_id,
            "approx": self.approx,
            "previous_version": self.previous_version,
            "previous_run": self.previous_run,
            "metrics": [m.to_dict() for m in self.metrics],
            "changes": list(self.changes),
        }


def workflow_changes(old_dag: Mapping[str, Any], new_dag: Mapping[str, Any]) -> tuple[str, ...]:
    """One line per difference between two compiled versions (``compiler.diff``).

    A node changed only because an input changed is not listed (its cause is).
    """
    lines: list[str] = []
    for change in diff_versions(old_dag, new_dag):
        if change.change in ("added", "removed"):
            lines.append(f"{change.change} {change.name} ({', '.join(change.details)})")
        elif change.change == "changed":
            own = [d for d in change.details if not d.startswith("input changed:")]
            lines.extend(
                d if d.startswith(f"{change.name}.") else f"{change.name}: {d}" for d in own
            )
    return tuple(lines)


def _ok_runs(runs: Iterable[Any], approx: bool, before: int | None) -> list[Any]:
    return sorted(
        (
            r
            for r in runs
            if r.status == "ok"
            and r.approx == approx
            and (before is None or r.id < before)
            and TAG_KEY not in r.params
        ),
        key=lambda r: r.id,
    )


def compare_metrics(
    metrics: Mapping[str, float],
    earlier: Sequence[Any],
    *,
    version: int,
) -> tuple[tuple[MetricChange, ...], Any]:
    """Each metric against the latest earlier run of another version and the best earlier run.

    ``earlier``: successful runs (``RunRecord``-like: ``id``, ``version``, ``metrics``)
    before this one, of the same kind. Returns the changes and the run compared with.
    """
    ordered = sorted(earlier, key=lambda r: r.id)
    previous = next((r for r in reversed(ordered) if r.version != version), None)
    out = []
    for name, value in metrics.items():
        direction = metric_direction(name)
        prev = previous.metrics.get(name) if previous is not None else None
        best_run = None
        for r in ordered:
            v = r.metrics.get(name)
            if v is None or direction is None or math.isnan(v):
                continue
            b = best_run.metrics[name] if best_run is not None else None
            if b is None or (v > b if direction == "higher" else v < b):
                best_run = r
        out.append(
            MetricChange(
                name=name,
                value=value,
                direction=direction,
                previous=prev,
                previous_version=previous.version if prev is not None else None,
                best=best_run.metrics[name] if best_run is not None else None,
                best_version=best_run.version if best_run is not None else None,
                best_run=best_run.id if best_run is not None else None,
            )
        )
    return tuple(out), previous


def compare_with_history(
    metadata: Any,
    workflow: str,
    *,
    version: int,
    run_id: int | None,
    approx: bool,
    metrics: Mapping[str, float],
    dag: Mapping[str, Any],
) -> RunComparison:
    """Compare a run (finished or about to be reported) with the runs recorded before it.

    ``metadata`` is a :class:`~helix_tf.reuse.metadata.MetadataStore`; ``dag`` the
    run's compiled workflow (``CompiledWorkflow.to_dict()``).
    """
    earlier = _ok_runs(metadata.runs(workflow, with_nodes=False), approx, run_id)
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

    run: Any  # RunRecord
    #: The version this run's version is compared with (its predecessor among the
    #: runs shown); None for the first, or for a rerun of the same version.
    changed_from: int | None
    changes: tuple[str, ...]

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
            "states": {
                s: sum(1 for n in r.nodes if n.state == s) for s in ("compute", "load", "prune")
            },
            "changed_from": self.changed_from,
            "changes": list(self.changes),
            "params": r.params,
        }
        if r.intervals:
            from helix_tf.results import INTERVAL_KIND

            out["intervals"] = {k: list(v) for k, v in r.intervals.items() if k in keys}
            out["interval_kind"] = INTERVAL_KIND
        if r.error:
            out["error"] = r.error
        return out


def history_entries(
    metadata: Any, workflow: str, *, limit: int | None = None, agent: bool = False
) -> list[HistoryEntry]:
    """The latest ``limit`` runs, newest first, each with what changed since the run before.

    A run of a version that differs from the version of the run before it (in run
    order, any kind) lists that version's changes; a rerun of the same version
    lists none. Tagged runs (the agent's) only with ``agent=True``.
    """
    if agent:
        runs = metadata.runs(workflow, limit=None if limit is None else limit + 1)
    else:
        runs = [r for r in metadata.runs(workflow) if TAG_KEY not in r.params]
        runs = runs if limit is None else runs[: limit + 1]
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
