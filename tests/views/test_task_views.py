"""The views of multiclass and regression runs, in the views registry: the K×K
confusion matrix (from stored predictions, else from the metrics' counts), predicted
against actual and the residuals; the report's label facts from the DAG."""

from __future__ import annotations

import dataclasses

import numpy as np

from helix_tf.report import _label_of
from helix_tf.views import PREDICTION_VIEWS, Evidence, confusion_cells, views_for
from helix_tf.views._html import render_views


def keys(html: str) -> list[str]:
    return [part.split('"')[0] for part in html.split('data-view="')[1:]]


def test_confusion_cells_read_multiclass_keys_only() -> None:
    metrics = {
        "confusion/a/b": 3.0,
        "confusion/a/a": 5.0,
        "confusion/a/a[g=x]": 1.0,  # a slice: not the overall matrix
        "confusion/tp": 7.0,  # binary
        "accuracy": 0.5,
    }
    assert confusion_cells(metrics) == {("a", "b"): 3.0, ("a", "a"): 5.0}


def test_every_task_has_its_prediction_views_in_the_registry() -> None:
    assert set(PREDICTION_VIEWS) == {"binary", "multiclass", "regression"}
    assert [v.key for v in PREDICTION_VIEWS["multiclass"]] == ["confusion"]
    assert [v.key for v in PREDICTION_VIEWS["regression"]] == ["predicted_vs_actual", "residuals"]
    assert "roc" not in [v.key for v in views_for("regression")]


def test_a_multiclass_run_without_stored_predictions_draws_the_metrics_counts() -> None:
    metrics = {f"confusion/{t}/{p}": float(t == p) * 5 + 1 for t in "xyz" for p in "xyz"}
    ev = Evidence(task="multiclass", metrics=metrics, classes=("z", "y", "x"))
    html = render_views(ev)
    assert keys(html) == ["confusion"]
    assert "Accuracy 0.7500 over 24 rows" in html  # 18 right of 24


def test_a_multiclass_run_with_predictions_draws_them_with_the_class_names() -> None:
    y = np.array([0, 1, 2, 2])
    s = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3]])
    ev = Evidence(task="multiclass", metrics={}, y_true=y, y_score=s, classes=("a", "b", "c"))
    view = PREDICTION_VIEWS["multiclass"][0]
    data = view.data(ev)
    assert data.labels == ("a", "b", "c")
    assert data.cells == ((1, 0, 0), (0, 0, 1), (0, 1, 1))
    assert "Accuracy 0.5000 over 4 rows" in render_views(ev)


def test_regression_predictions_get_a_scatter_and_a_residual_histogram() -> None:
    y = np.exp(np.random.default_rng(0).normal(8, 1.5, 200))  # spans > two decades
    ev = Evidence(task="regression", metrics={"rmse": 1.0}, y_true=y, y_score=y * 1.1)
    html = render_views(ev)
    assert keys(html) == ["predicted_vs_actual", "residuals"]
    assert "200 rows of the evaluation split" in html
    reg = PREDICTION_VIEWS["regression"][0].data(ev)
    assert reg.log_axes and np.allclose(reg.residual, -0.1 * y)


def test_binary_runs_get_no_task_views() -> None:
    y = np.array([0, 1, 1, 0])
    ev = Evidence(task="binary", metrics={"confusion/tp": 3.0}, y_true=y, y_score=y * 0.8)
    assert "predicted_vs_actual" not in keys(render_views(ev))
    assert keys(render_views(ev))[:4] == ["roc", "precision_recall", "calibration", "confusion"]


def test_the_label_of_a_version_comes_from_its_examples_node() -> None:
    def dag(op: str, **label: object) -> dict:
        node = {"name": "examples", "role": "examples", "op": op, "extra": {"label": label}}
        return {"nodes": {"examples": node}}

    assert _label_of(dag("MulticlassLabel", classes=["b", "a"])) == ("multiclass", ("b", "a"))
    assert _label_of(dag("MulticlassLabel", classes=None)) == ("multiclass", None)
    assert _label_of(dag("NumericLabel", transform="log")) == ("regression", None)
    assert _label_of(dag("Label", positive=">50K")) == ("binary", ("not >50K", ">50K"))
    assert _label_of({}) == (None, None)


def test_the_cli_grid_marks_approximate_counts_with_their_intervals() -> None:
    from rich.console import Console

    from helix_tf.rendering import confusion_table, metrics_table

    @dataclasses.dataclass
    class _Result:
        metrics: dict[str, float]
        intervals: dict[str, tuple[float, float]]
        approx: bool = True

    metrics = {"confusion/a/a": 8.0, "confusion/a/b": 2.0, "confusion/b/b": 5.0, "accuracy": 0.8}
    intervals = {k: (v - 1, v + 1) for k, v in metrics.items()}
    console = Console(width=120, record=True)
    console.print(metrics_table(_Result(metrics, intervals)))
    grid = confusion_table(_Result(metrics, intervals))
    assert grid is not None
    console.print(grid)
    text = console.export_text()
    assert "≈8 [7, 9]" in text and "≈0" in text  # a cell the run never saw is 0
    assert "confusion/a/a" not in text and "accuracy" in text
    assert confusion_table(_Result({"accuracy": 0.8}, {}, approx=False)) is None


def test_missing_predictions_are_noted_in_the_tasks_words() -> None:
    from helix_tf.errors import StoreError
    from helix_tf.views import gather

    def read(kind: str, node: str, fingerprint: str) -> object:
        raise StoreError("not kept")

    nodes = [("predictions", "predict", "f" * 32)]
    regression = gather(nodes, metrics={}, read=read, task="regression")
    assert regression.task == "regression"
    assert regression.notes[0] == "no predicted vs actual or residuals: not kept"
    assert gather(nodes, metrics={}, read=read).notes[0] == "no curves: not kept"
    metrics = {"confusion/a/a": 2.0, "confusion/a/b": 1.0, "confusion/b/b": 3.0}
    multiclass = gather(nodes, metrics=metrics, read=read, task="multiclass", classes=("b", "a"))
    # Without stored predictions, the metric's counts still draw the matrix.
    assert [v.key for v in views_for(multiclass.task) if v.data(multiclass) is not None] == [
        "confusion"
    ]
    assert PREDICTION_VIEWS["multiclass"][0].data(multiclass).labels == ("b", "a")
