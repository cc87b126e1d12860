"""Metrics of a run against earlier runs: direction, selection, changes.

Pure functions over run records (no TensorFlow, no Beam, no database).

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

__all__ = [
    "LOWER_IS_BETTER",
    "MetricChange",
    "RunComparison",
    "metric_base",
    "metric_direction",
    "select_metrics",
    "compare_metrics",
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
    (``auc*``). An empty or missing selection selects every key, and so does one of
    blank items only (``--metrics " "`` or ``","`` names nothing, so it narrows nothing).
    """
    keys = list(keys)
    wanted = [s.strip() for s in selection or () if s.strip()]
    if not wanted:
        return keys
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
