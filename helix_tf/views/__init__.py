"""The views ML people look at, from a run's stored results: curves, calibration,
confusion, per-slice metrics, feature importance and linear weights.

Each :class:`View` turns :class:`Evidence` (one run's scores, metrics and
explanation, read from the store, never recomputed) into data, and draws that
data on a matplotlib ``Axes``. The HTML report (``helix-tf report``) and Python
users share them:

>>> result = helix_tf.run("configs/census.py")            # doctest: +SKIP
>>> views.roc_curve_of(result).auc                        # doctest: +SKIP
0.8961
>>> views.figure(result, "calibration")                   # doctest: +SKIP
<Figure ...>

Which views a run gets depends on its task: :data:`PREDICTION_VIEWS` maps a task
type to the views of its predictions (a new task adds one entry), and
:data:`COMMON_VIEWS` apply to every task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from helix_tf.errors import StoreError
from helix_tf.types import LABEL, SCORE
from helix_tf.views import _charts
from helix_tf.views._data import (
    Calibration,
    Confusion,
    Curve,
    calibration,
    confusion,
    precision_recall_curve,
    roc_curve,
    slices,
)
from helix_tf.views._stored import read_explanation, read_predictions

__all__ = [
    "COMMON_VIEWS",
    "Calibration",
    "Confusion",
    "Curve",
    "Evidence",
    "PREDICTION_VIEWS",
    "View",
    "calibration",
    "confusion",
    "evidence",
    "figure",
    "precision_recall_curve",
    "roc_curve",
    "roc_curve_of",
    "slices",
    "task_of",
    "views_for",
]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What the views of one run are drawn from (all read from its stored results)."""

    task: str
    metrics: Mapping[str, float]
    #: The predictions node the curves come from, and its labels and scores.
    predictions: str | None = None
    y_true: np.ndarray | None = None
    y_score: np.ndarray | None = None
    #: Class names, negative first (binary: e.g. ``("not >50K", ">50K")``).
    classes: tuple[str, ...] = ("negative", "positive")
    #: The explain node and its result (permutation importance, linear weights).
    explain: str | None = None
    explanation: Mapping[str, Any] | None = None
    #: Why some view is missing ("predictions not stored ...").
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class View:
    """One view: ``data(evidence)`` (None: nothing to show) and ``draw(ax, data)``."""

    key: str
    title: str
    data: Callable[[Evidence], Any]
    draw: Callable[[Any, Any], None]
    caption: Callable[[Any], str] = lambda _: ""
    #: Figure size in inches; ``tall`` grows the height with the number of bars.
    size: tuple[float, float] = (4.6, 3.7)
    bars: Callable[[Any], int] | None = None


def _scores(fn: Callable[..., Any]) -> Callable[[Evidence], Any]:
    def data(ev: Evidence) -> Any:
        if ev.y_true is None or ev.y_score is None or len(ev.y_true) == 0:
            return None
        return fn(ev.y_true, ev.y_score)

    return data


def _confusion(ev: Evidence) -> Confusion | None:
    if ev.y_true is None or ev.y_score is None or len(ev.y_true) == 0:
        return None
    return confusion(ev.y_true, ev.y_score, labels=(ev.classes[0], ev.classes[-1]))


def _importance(ev: Evidence) -> Mapping[str, Any] | None:
    return ev.explanation if ev.explanation and ev.explanation.get("features") else None


def _linear(ev: Evidence) -> Mapping[str, Any] | None:
    linear = (ev.explanation or {}).get("linear")
    return linear if linear and (linear.get("positive") or linear.get("negative")) else None


def _slices(ev: Evidence) -> Mapping[str, Any] | None:
    return slices(ev.metrics) or None


def _slice_bars(groups: Mapping[str, Mapping[str, Mapping[str, float]]]) -> int:
    return sum(len({v for m in per.values() for v in m}) for per in groups.values())


ROC = View(
    key="roc",
    title="ROC curve",
    data=_scores(roc_curve),
    draw=_charts.draw_roc,
    caption=lambda c: f"AUC {c.auc:.4f}: the chance that a positive scores above a negative.",
)
PRECISION_RECALL = View(
    key="precision_recall",
    title="Precision and recall",
    data=_scores(precision_recall_curve),
    draw=_charts.draw_pr,
    caption=lambda c: f"Average precision {c.auc:.4f}; the dashed line is the positive rate.",
)
CALIBRATION = View(
    key="calibration",
    title="Calibration (reliability)",
    data=_scores(calibration),
    draw=_charts.draw_calibration,
    caption=lambda c: (
        f"Points on the diagonal: scores are honest probabilities. "
        f"Expected calibration error {c.ece:.3f}."
    ),
)
CONFUSION = View(
    key="confusion",
    title="Confusion matrix",
    data=_confusion,
    draw=_charts.draw_confusion,
    caption=lambda c: f"{sum(map(sum, c.cells)):,} rows of the evaluation split.",
)
SLICES = View(
    key="slices",
    title="Metrics per slice",
    data=_slices,
    draw=_charts.draw_slices,
    caption=lambda _: "Metrics declared with slice_by=..., over all rows and per value.",
    size=(9.4, 1.0),
    bars=_slice_bars,
)
IMPORTANCE = View(
    key="importance",
    title="Feature importance (permutation)",
    data=_importance,
    draw=_charts.draw_importance,
    caption=lambda e: (
        f"Each feature shuffled {e['repeats']}× over {e['rows']:,} rows of the "
        f"{e.get('split', 'test')} split (on these rows "
        + ", ".join(f"{k} {v:.4f}" for k, v in e["baseline"].items())
        + " unshuffled)."
    ),
    size=(5.6, 1.0),
    bars=lambda e: min(len(e["features"]), 20),
)
WEIGHTS = View(
    key="weights",
    title="Linear weights: top positive and negative",
    data=_linear,
    draw=_charts.draw_weights,
    caption=lambda w: (
        "Positive weights push towards the positive class."
        + "".join(
            f" All {v['weights']} weights of {f} are 0."
            for f, v in w["features"].items()
            if v["zero"] == v["weights"]
        )
    ),
    size=(5.6, 1.0),
    bars=lambda w: len(w.get("positive", [])) + len(w.get("negative", [])),
)

#: The views of a predictions table, by task type: a task adds its views by one entry.
PREDICTION_VIEWS: dict[str, tuple[View, ...]] = {
    "binary": (ROC, PRECISION_RECALL, CALIBRATION, CONFUSION),
}
#: Views for every task: from the metrics and the explanation.
COMMON_VIEWS: tuple[View, ...] = (SLICES, IMPORTANCE, WEIGHTS)


def views_for(task: str) -> tuple[View, ...]:
    """The views of a run of ``task`` (``"binary"``, ...), in the order they are shown."""
    return (*PREDICTION_VIEWS.get(task, ()), *COMMON_VIEWS)


def task_of(y_true: np.ndarray | None, y_score: np.ndarray | None) -> str:
    """The task type a predictions table belongs to (binary: 0/1 labels, scores in [0, 1])."""
    if y_true is None or y_score is None:
        return "binary"
    labels_01 = np.isin(y_true, (0, 1)).all()
    if np.ndim(y_score) == 1 and labels_01 and bool(((y_score >= 0) & (y_score <= 1)).all()):
        return "binary"
    return "multiclass" if np.ndim(y_score) == 2 else "regression"


Reader = Callable[[str, str, str], Any]  # (kind, node, fingerprint) -> stored result


def gather(
    nodes: Iterable[tuple[str, str, str]],
    *,
    metrics: Mapping[str, float],
    store_url: str = "",
    read: Reader | None = None,
    classes: tuple[str, ...] | None = None,
) -> Evidence:
    """A run's evidence: nodes as ``(name, kind, fingerprint)``, results from its store.

    The first ``predict`` node's predictions give the curves, the first ``explain``
    node's result the importance and weights, read by ``read(kind, node,
    fingerprint)`` (default: from ``store_url``). What is not stored is left out,
    with a note that says why.
    """
    read = read or _store_reader(store_url)
    nodes = list(nodes)
    notes: list[str] = []
    fields: dict[str, Any] = {}
    predict = [(n, fp) for n, kind, fp in nodes if kind == "predict"]
    explain = [(n, fp) for n, kind, fp in nodes if kind == "explain"]
    if predict:
        name, fp = predict[0]
        try:
            table = read("predict", name, fp)
        except StoreError as exc:
            notes.append(f"no curves: {exc}")
        else:
            fields["y_true"] = table.column(LABEL).to_numpy()
            fields["y_score"] = _scores_of(table.column(SCORE))
            fields["predictions"] = name
        if len(predict) > 1:
            notes.append(f"curves show predictions node {name!r} of {len(predict)}")
    if explain:
        name, fp = explain[0]
        try:
            fields["explanation"] = read("explain", name, fp)
            fields["explain"] = name
        except StoreError as exc:
            notes.append(f"no feature importance: {exc}")
    else:
        notes.append(
            "no feature importance or weights: declare wf.explain(name, model, examples) "
            "and make it an output"
        )
    task = task_of(fields.get("y_true"), fields.get("y_score"))
    if classes is not None:
        fields["classes"] = classes
    return Evidence(task=task, metrics=dict(metrics), notes=tuple(notes), **fields)


def _scores_of(column: Any) -> np.ndarray:
    """Scores as floats: one per row, or one row of class scores per row (list columns)."""
    import pyarrow as pa

    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        return np.asarray(column.to_pylist(), dtype=np.float64)
    return column.to_numpy().astype(np.float64)


def _store_reader(store_url: str) -> Reader:
    def read(kind: str, node: str, fingerprint: str) -> Any:
        if kind == "predict":
            return read_predictions(store_url, fingerprint, node)
        return read_explanation(store_url, fingerprint, node)

    return read


def evidence(result: Any) -> Evidence:
    """The evidence of a :class:`~helix_tf.results.RunResult`: held in memory, else stored."""

    def read(kind: str, node: str, fingerprint: str) -> Any:
        return result.predictions(node) if kind == "predict" else result.explanation(node)

    return gather(
        ((n.name, n.kind, n.fingerprint) for n in result.nodes),
        metrics=result.metrics,
        read=read,
    )


def roc_curve_of(result: Any) -> Curve:
    """The ROC curve of a run's (first) predictions, read from the store."""
    ev = evidence(result)
    if ev.y_true is None:
        raise StoreError("; ".join(ev.notes) or "the run has no predictions")
    return roc_curve(ev.y_true, ev.y_score)


def figure(source: Any, key: str) -> Any:
    """A matplotlib ``Figure`` of view ``key`` for a ``RunResult`` (or an :class:`Evidence`)."""
    ev = source if isinstance(source, Evidence) else evidence(source)
    for view in views_for(ev.task):
        if view.key == key:
            data = view.data(ev)
            if data is None:
                raise ValueError(f"view {key!r} has nothing to show: {'; '.join(ev.notes)}")
            return draw(view, data)
    known = ", ".join(v.key for v in views_for(ev.task))
    raise ValueError(f"no view {key!r} for a {ev.task} run; views are: {known}")


def draw(view: View, data: Any, *, title: bool = True) -> Any:
    """Draw ``data`` of ``view`` on a new figure (Agg canvas: works without a display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = view.size
    if view.bars is not None:
        height = max(2.4, 0.9 + 0.24 * view.bars(data))
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    view.draw(ax, data)
    if title:
        ax.set_title(_charts._mpl(view.title), fontsize=11)
    return fig
