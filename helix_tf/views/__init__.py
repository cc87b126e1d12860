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
:data:`COMMON_VIEWS` apply to every task:

- ``binary``: ROC and precision-recall curves, calibration, the 2×2 confusion matrix;
- ``multiclass``: the K×K confusion matrix (from the stored predictions, else from a
  ``MulticlassConfusionMatrix`` metric's counts, which the metadata database holds);
- ``regression``: predicted against actual, and the residuals' histogram.

The task is the label's: the stored predictions' label facts, else what the
caller knows (the report reads the version's DAG), else the scores' shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from helix_tf.errors import StoreError
from helix_tf.roles import Role
from helix_tf.types import LABEL, SCORE
from helix_tf.views import _charts
from helix_tf.views._data import (
    Calibration,
    Confusion,
    Curve,
    Regression,
    calibration,
    confusion,
    confusion_cells,
    confusion_of_cells,
    multiclass_confusion,
    precision_recall_curve,
    regression,
    roc_curve,
    slices,
)
from helix_tf.views._stored import read_explanation, read_label, read_predictions

__all__ = [
    "COMMON_VIEWS",
    "Calibration",
    "Confusion",
    "Curve",
    "Evidence",
    "PREDICTION_VIEWS",
    "View",
    "Regression",
    "calibration",
    "confusion",
    "confusion_cells",
    "evidence",
    "figure",
    "multiclass_confusion",
    "precision_recall_curve",
    "regression",
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
    #: Class names: binary, negative first (e.g. ``("not >50K", ">50K")``); multiclass,
    #: in class-index order.
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


def _multiclass_confusion(ev: Evidence) -> Confusion | None:
    if ev.y_true is not None and ev.y_score is not None and np.ndim(ev.y_score) == 2:
        if len(ev.y_true) == 0:
            return None
        return multiclass_confusion(ev.y_true, ev.y_score, labels=ev.classes)
    cells = confusion_cells(ev.metrics)  # no stored predictions: a declared metric's counts
    return confusion_of_cells(cells, ev.classes) if cells else None


def _regression(ev: Evidence) -> Regression | None:
    if ev.y_true is None or ev.y_score is None or len(ev.y_true) == 0:
        return None
    return regression(ev.y_true, ev.y_score)


def _regression_caption(r: Regression) -> str:
    drawn = f" ({len(r.shown):,} drawn)" if len(r.shown) < len(r.y_true) else ""
    return (
        f"{len(r.y_true):,} rows of the evaluation split{drawn}; RMSE {r.rmse:,.4g}, "
        f"median residual {float(np.median(r.residual)):,.4g}."
    )


def _importance(ev: Evidence) -> Mapping[str, Any] | None:
    return ev.explanation if ev.explanation and ev.explanation.get("features") else None


def _linear(ev: Evidence) -> Mapping[str, Any] | None:
    linear = (ev.explanation or {}).get("linear")
    return linear if linear and (linear.get("positive") or linear.get("negative")) else None


def _slices(ev: Evidence) -> Mapping[str, Any] | None:
    return slices(ev.metrics) or None


def _slice_bars(groups: Mapping[str, Mapping[str, Mapping[str, float]]]) -> int:
    return sum(len({v for m in per.values() for v in m}) for per in groups.values())


#: What a linear weight means, by task (the weights view's caption).
_WEIGHT_MEANING = {
    "binary": "Positive weights push towards the positive class.",
    "multiclass": (
        "One weight per value and class (value → class): a positive weight pushes "
        "towards that class, a negative one away from it."
    ),
    "regression": "Positive weights raise the prediction, negative ones lower it.",
}

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
MULTICLASS_CONFUSION = View(
    key="confusion",
    title="Confusion matrix",
    data=_multiclass_confusion,
    draw=_charts.draw_confusion,
    caption=lambda c: (
        "Rows: true class; columns: most probable class. Accuracy "
        f"{sum(c.cells[i][i] for i in range(len(c.cells))) / max(sum(map(sum, c.cells)), 1):.4f}"
        f" over {sum(map(sum, c.cells)):,} rows."
    ),
    size=(6.4, 5.2),
)
PREDICTED_VS_ACTUAL = View(
    key="predicted_vs_actual",
    title="Predicted vs actual",
    data=_regression,
    draw=_charts.draw_predicted_vs_actual,
    caption=_regression_caption,
    size=(5.0, 4.2),
)
RESIDUALS = View(
    key="residuals",
    title="Residuals (label - prediction)",
    data=_regression,
    draw=_charts.draw_residuals,
    caption=lambda r: (
        f"Residuals of {len(r.y_true):,} rows; a centred, narrow histogram: unbiased, precise."
    ),
    size=(5.0, 4.2),
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
        _WEIGHT_MEANING.get(w.get("task", "binary"), "")
        + (f" They act on the {w['transform']} of the label." if w.get("transform") else "")
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
    "multiclass": (MULTICLASS_CONFUSION,),
    "regression": (PREDICTED_VS_ACTUAL, RESIDUALS),
}
#: Views for every task: from the metrics and the explanation.
COMMON_VIEWS: tuple[View, ...] = (SLICES, IMPORTANCE, WEIGHTS)


def views_for(task: str) -> tuple[View, ...]:
    """The views of a run of ``task`` (``"binary"``, ...), in the order they are shown."""
    return (*PREDICTION_VIEWS.get(task, ()), *COMMON_VIEWS)


def task_of(
    y_true: np.ndarray | None, y_score: np.ndarray | None, *, default: str = "binary"
) -> str:
    """The task type a predictions table looks like (binary: 0/1 labels, scores in [0, 1]).

    Without predictions: ``default``. A stored table's label facts say it for sure
    (:func:`gather` reads them); this is the fallback.
    """
    if y_true is None or y_score is None:
        return default
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
    task: str | None = None,
) -> Evidence:
    """A run's evidence: nodes as ``(name, kind, fingerprint)``, results from its store.

    The first ``predict`` node's predictions give the prediction views, the first
    ``explain`` node's result the importance and weights, read by ``read(kind,
    node, fingerprint)`` (default: from ``store_url``); ``read("label", ...)`` gives
    the predictions' label facts (task, classes). ``task`` and ``classes`` are what
    the caller knows of the label (the version's DAG), used where the store has no
    label facts. What is not stored is left out, with a note that says why.
    """
    read = read or _store_reader(store_url)
    nodes = list(nodes)
    notes: list[str] = []
    fields: dict[str, Any] = {}
    predict = [(n, fp) for n, kind, fp in nodes if kind == Role.PREDICT]
    explain = [(n, fp) for n, kind, fp in nodes if kind == Role.EXPLAIN]
    if predict:
        name, fp = predict[0]
        try:
            table = read(Role.PREDICT, name, fp)
        except StoreError as exc:
            notes.append(f"no {{views}}: {exc}")
        else:
            fields["y_true"] = table.column(LABEL).to_numpy()
            fields["y_score"] = _scores_of(table.column(SCORE))
            fields["predictions"] = name
            label = _label_facts(read, name, fp)
            task = label.get("task", task)
            if label.get("classes"):
                classes = tuple(str(c) for c in label["classes"])
        if len(predict) > 1:
            notes.append(f"{{views}} show predictions node {name!r} of {len(predict)}")
    if explain:
        name, fp = explain[0]
        try:
            fields["explanation"] = read(Role.EXPLAIN, name, fp)
            fields["explain"] = name
        except StoreError as exc:
            notes.append(f"no feature importance: {exc}")
    else:
        notes.append(
            "no feature importance or weights: declare wf.explain(name, model, examples) "
            "and make it an output"
        )
    if task is None or (task == "binary" and "y_true" in fields):
        task = task_of(fields.get("y_true"), fields.get("y_score"), default=task or "binary")
    if classes is not None:
        fields["classes"] = classes
    # What the predictions would have shown, in the task's words.
    notes = [n.replace("{views}", _PREDICTION_WORDS.get(task, "curves"), 1) for n in notes]
    return Evidence(task=task, metrics=dict(metrics), notes=tuple(notes), **fields)


_PREDICTION_WORDS = {
    "binary": "curves",
    "multiclass": "confusion matrix of the predictions",
    "regression": "predicted vs actual or residuals",
}


def _label_facts(read: Reader, node: str, fingerprint: str) -> Mapping[str, Any]:
    """The label facts stored with predictions (``{}``: none stored, e.g. binary runs)."""
    try:
        return read("label", node, fingerprint) or {}
    except (StoreError, KeyError):
        return {}


def _scores_of(column: Any) -> np.ndarray:
    """Scores as floats: one per row, or one row of class scores per row (list columns)."""
    import pyarrow as pa

    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        return np.asarray(column.to_pylist(), dtype=np.float64)
    return column.to_numpy().astype(np.float64)


def _store_reader(store_url: str) -> Reader:
    readers = {Role.PREDICT: read_predictions, "label": read_label, Role.EXPLAIN: read_explanation}

    def read(kind: str, node: str, fingerprint: str) -> Any:
        return readers[kind](store_url, fingerprint, node)

    return read


def evidence(result: Any) -> Evidence:
    """The evidence of a :class:`~helix_tf.results.RunResult`: held in memory, else stored."""

    def read(kind: str, node: str, fingerprint: str) -> Any:
        if kind == "label":
            return result.reader.read(kind, node, fingerprint) if result.reader else {}
        return result.predictions(node) if kind == Role.PREDICT else result.explanation(node)

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
    from helix_tf._optional import agg_figure

    width, height = view.size
    if view.bars is not None:
        height = max(2.4, 0.9 + 0.24 * view.bars(data))
    fig: Any = agg_figure(width, height, purpose="helix_tf.views draws its figures")
    ax = fig.subplots()
    view.draw(ax, data)
    if title:
        ax.set_title(_charts._mpl(view.title), fontsize=11)
    return fig
