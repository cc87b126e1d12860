"""Report views of multiclass and regression runs: the confusion-matrix heat map, the
predicted-vs-actual scatter and the residual histogram."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from helix_tf.report_views_tasks import confusion_cells, declared_classes, task_sections


@dataclasses.dataclass
class _Run:
    metrics: dict[str, float]
    nodes: list[Any] = dataclasses.field(default_factory=list)


def test_confusion_cells_read_multiclass_keys_only() -> None:
    metrics = {
        "confusion/a/b": 3.0,
        "confusion/a/a": 5.0,
        "confusion/a/a[g=x]": 1.0,  # a slice: not the overall matrix
        "confusion/tp": 7.0,  # binary
        "accuracy": 0.5,
    }
    assert confusion_cells(metrics) == {("a", "b"): 3.0, ("a", "a"): 5.0}


def test_multiclass_run_gets_a_confusion_heat_map() -> None:
    metrics = {f"confusion/{t}/{p}": float(t == p) * 5 + 1 for t in "xyz" for p in "xyz"}
    html = "".join(task_sections(_Run(metrics), classes=["z", "y", "x"]))
    assert "Confusion matrix of the latest run" in html
    assert 'alt="confusion matrix" src="data:image/png;base64,' in html
    assert "accuracy 0.7500 over 24 rows" in html  # 18 right of 24


def test_regression_predictions_get_a_scatter_and_a_residual_histogram() -> None:
    y = np.exp(np.random.default_rng(0).normal(8, 1, 200))
    html = "".join(task_sections(_Run({"rmse": 1.0}), {"predictions": (y, y * 1.1)}))
    assert "Predicted vs actual: predictions" in html
    assert 'alt="predicted vs actual"' in html and "200 rows of the test split" in html


def test_binary_runs_get_no_task_views() -> None:
    assert task_sections(_Run({"accuracy": 0.8, "confusion/tp": 3.0})) == []
    assert task_sections(None) == []


def test_declared_classes_come_from_the_examples_label() -> None:
    dag = {"nodes": [{"name": "examples", "role": "examples", "params": {"classes": ["b", "a"]}}]}
    assert declared_classes(dag) == ["b", "a"]
    assert declared_classes({"nodes": [{"role": "examples", "params": {"classes": None}}]}) is None


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
