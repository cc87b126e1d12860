"""Metrics by task: which metrics fit which label, and evaluation of non-binary labels.

:func:`metric_problem` is the compile-time check (a metric that does not fit the
label's task, or asks for a scale the label does not have); :func:`evaluate_task`
is what the engine calls for multiclass and regression predictions: it names the
classes in the keys and gives each regression metric its values on its scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from helix_tf.components.metrics._base import Metric, _describe
from helix_tf.components.metrics._combined import bootstrap_metrics, compute_metrics
from helix_tf.components.metrics._multiclass import TopKAccuracy, _MulticlassMetric
from helix_tf.components.metrics._regression import ORIGINAL_SCALE, _RegressionMetric
from helix_tf.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["metric_problem", "evaluate_task", "SUGGESTIONS"]

#: For a metric of one task, its counterpart for another: (metric, task) -> suggestion.
SUGGESTIONS: dict[tuple[str, str], str] = {
    ("Accuracy", "multiclass"): "MulticlassAccuracy",
    ("AUC", "multiclass"): "OneVsRestAUC",
    ("LogLoss", "multiclass"): "MulticlassLogLoss",
    ("ConfusionMatrix", "multiclass"): "MulticlassConfusionMatrix",
    ("Precision", "multiclass"): "MulticlassPrecisionRecallF1",
    ("Recall", "multiclass"): "MulticlassPrecisionRecallF1",
    ("PrecisionRecall", "multiclass"): "MulticlassPrecisionRecallF1",
    ("MulticlassAccuracy", "binary"): "Accuracy",
    ("OneVsRestAUC", "binary"): "AUC",
    ("MulticlassLogLoss", "binary"): "LogLoss",
}
_REGRESSION = "RMSE, R2, MAE, MAPE or Residuals"


def metric_problem(metric: Metric, label: Any) -> str | None:
    """Why ``metric`` cannot evaluate predictions of ``label`` (None: it can).

    ``label`` is a label operator (``TASK``, ``column`` and, for regression,
    ``transform``).
    """
    task = getattr(label, "TASK", "binary")
    who = _describe(metric)
    spelled = f"{type(label).__name__}({label.column!r})"
    if task not in metric.TASKS:
        hint = SUGGESTIONS.get((metric.op_name, task))
        if hint is None and task == "regression":
            hint = _REGRESSION.replace(", ", ", metrics.").replace(" or ", " or metrics.")
        return (
            f"metric {who} fits {' or '.join(metric.TASKS)} labels, but label {spelled} "
            f"makes a {task} task" + (f"; use metrics.{hint} instead" if hint else "")
        )
    declared = getattr(label, "classes", None)
    if isinstance(metric, TopKAccuracy) and declared:
        count = len(declared) + (getattr(label, "unseen", "error") == "other")
        if metric.k >= count:
            return (
                f"metric {who} counts a hit among the top {metric.k} of {count} classes of label "
                f"{spelled}: every row is a hit; use k < {count}"
            )
    if isinstance(metric, _RegressionMetric) and metric.scale != ORIGINAL_SCALE:
        transform = getattr(label, "transform", None)
        if metric.scale != transform:
            has = f"transform={transform!r}" if transform else "no transform"
            return (
                f"metric {who} asks for scale={metric.scale!r}, but label {spelled} has {has}; "
                f"use scale='original'" + (f" or scale={transform!r}" if transform else "")
            )
    return None


def evaluate_task(
    metrics: Sequence[Metric],
    label: Mapping[str, Any],
    y_true: Any,
    y_score: Any,
    frame: pd.DataFrame | None = None,
    *,
    intervals: bool = False,
    describe: Callable[[int], str] | None = None,
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Values (and, when asked, bootstrap intervals) of metrics for a label's task.

    ``label`` holds the label's facts: ``task``, and ``classes`` (multiclass) or
    ``transform`` (regression). Multiclass metrics get the class names for their
    keys; regression metrics with ``scale`` set to the transform get both arrays
    transformed. Returns ``(values, intervals)``, keys sorted.

    Raises DataError when a label or prediction is outside a scale's transform (a
    price of 0 under ``scale="log"``), naming the row by ``describe`` (a position in
    the arrays -> e.g. "line 30 of test.csv"; None: the position) and the fix.
    """

    task = label.get("task", "binary")
    groups: dict[str, list[Metric]] = {}
    for m in metrics:
        if isinstance(m, _MulticlassMetric) and label.get("classes"):
            m = m.with_classes(tuple(label["classes"]))
        scale = m.scale if isinstance(m, _RegressionMetric) else ORIGINAL_SCALE
        groups.setdefault(scale, []).append(m)
    values: dict[str, float] = {}
    bounds: dict[str, tuple[float, float]] = {}
    for scale, group in groups.items():
        y, s = y_true, y_score
        if task == "regression":
            y = np.asarray(y_true, dtype=np.float64)
            s = np.asarray(y_score, dtype=np.float64)
            if scale != ORIGINAL_SCALE:
                y, s = _on_scale(scale, y, s, group, describe)
        values.update(compute_metrics(group, y, s, frame))
        if intervals:
            bounds.update(bootstrap_metrics(group, y, s, frame))
    return dict(sorted(values.items())), dict(sorted(bounds.items()))


def _on_scale(
    scale: str,
    y: np.ndarray,
    s: np.ndarray,
    group: Sequence[Metric],
    describe: Callable[[int], str] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions on a transform's scale; a value outside the transform's
    domain (QA pass 28: a test label of 0 under ``scale="log"``) fails naming its row."""
    from helix_tf.components.features._label import TRANSFORM_DOMAIN, forward_transform

    out = []
    for what, values in (("label", y), ("prediction", s)):
        with np.errstate(divide="ignore", invalid="ignore"):
            moved = forward_transform(scale, values)
        bad = ~np.isfinite(moved)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = describe(i) if describe is not None else f"row {i} of the predictions"
            raise DataError(
                f"{', '.join(_describe(m) for m in group)}: {where} has {what} "
                f"{float(values[i])!r}, but scale={scale!r} needs values "
                f"{TRANSFORM_DOMAIN[scale]} ({int(bad.sum())} such rows); use "
                f"scale='original' for these metrics, or drop those rows"
            )
        out.append(moved)
    return out[0], out[1]
