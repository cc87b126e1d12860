"""Which views a run gets (helix_tf.views): by task type, one registry entry per task."""

from __future__ import annotations

import numpy as np
import pytest

from helix_tf import views
from helix_tf.views import COMMON_VIEWS, PREDICTION_VIEWS, Evidence, View, task_of, views_for


def test_binary_runs_get_curves_calibration_and_confusion_then_the_common_views() -> None:
    keys = [v.key for v in views_for("binary")]
    assert keys == [
        "roc",
        "precision_recall",
        "calibration",
        "confusion",
        "slices",
        "importance",
        "weights",
    ]
    assert [v.key for v in views_for("unknown task")] == [v.key for v in COMMON_VIEWS]


def test_a_task_adds_its_views_by_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    residuals = View(
        key="residuals",
        title="Residuals",
        data=lambda ev: None if ev.y_true is None else ev.y_true - ev.y_score,
        draw=lambda ax, r: ax.hist(r),
    )
    monkeypatch.setitem(PREDICTION_VIEWS, "regression", (residuals,))
    ev = Evidence(
        task=task_of(np.array([1.5, 2.0, 7.0]), np.array([1.0, 2.5, 6.0])),
        metrics={},
        y_true=np.array([1.5, 2.0, 7.0]),
        y_score=np.array([1.0, 2.5, 6.0]),
    )
    assert ev.task == "regression"
    assert views_for(ev.task)[0] is residuals
    assert views.figure(ev, "residuals").axes[0].get_title() == "Residuals"


@pytest.mark.parametrize(
    ("y", "p", "task"),
    [
        ([0, 1, 1], [0.2, 0.9, 0.5], "binary"),
        ([0, 2, 1], [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]], "multiclass"),
        ([0.5, 3.2, 1.0], [0.4, 2.9, 1.3], "regression"),
        ([0, 1], [0.2, 1.7], "regression"),  # scores outside [0, 1] are no probabilities
    ],
)
def test_the_task_is_read_from_labels_and_scores(y, p, task: str) -> None:
    assert task_of(np.asarray(y), np.asarray(p)) == task


def test_a_view_with_nothing_to_show_says_why() -> None:
    ev = Evidence(task="binary", metrics={"auc": 0.9}, notes=("no curves: not stored",))
    with pytest.raises(ValueError, match="view 'roc' has nothing to show: no curves: not stored"):
        views.figure(ev, "roc")
