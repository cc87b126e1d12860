"""The numbers behind the views (helix_tf.views._data): curves, calibration, confusion, slices."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helix_tf.components.metrics import AUC, ConfusionMatrix
from helix_tf.views import calibration, confusion, precision_recall_curve, roc_curve, slices

labelled = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 1.0]), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(labelled)
def test_area_under_the_roc_curve_is_the_auc_metric_ties_included(case) -> None:
    y, p = np.array(case[0]), np.array(case[1])
    curve = roc_curve(y, p)
    expected = AUC().compute(y, p)["auc"]
    if math.isnan(expected):
        assert math.isnan(curve.auc)
    else:
        assert curve.auc == pytest.approx(expected, abs=1e-12)
    assert curve.x[0] == 0 and curve.y[0] == 0
    assert np.all(np.diff(curve.x) >= 0) and np.all(np.diff(curve.y) >= 0)


@settings(max_examples=150, deadline=None)
@given(labelled)
def test_precision_recall_points_are_the_counts_at_each_threshold(case) -> None:
    y, p = np.array(case[0]), np.array(case[1])
    curve = precision_recall_curve(y, p)
    for threshold, recall, precision in zip(
        curve.thresholds[1:], curve.x[1:], curve.y[1:], strict=True
    ):
        predicted = p >= threshold
        tp = int((predicted & (y == 1)).sum())
        assert precision == pytest.approx(tp / predicted.sum())
        if y.sum():
            assert recall == pytest.approx(tp / y.sum())
    if y.sum():  # average precision: precision summed over the recall steps
        steps = np.diff(curve.x) * curve.y[1:]
        assert curve.auc == pytest.approx(steps.sum())
        assert curve.chance == pytest.approx(y.mean())


def test_calibration_bins_mean_score_and_positive_rate() -> None:
    y = np.array([0, 1, 0, 1, 1, 1])
    p = np.array([0.05, 0.15, 0.55, 0.55, 0.95, 1.0])
    cal = calibration(y, p, bins=2)
    assert cal.rows.tolist() == [2, 4]
    assert cal.predicted.tolist() == pytest.approx([0.1, 0.7625])
    assert cal.observed.tolist() == pytest.approx([0.5, 0.75])
    assert cal.ece == pytest.approx((2 * 0.4 + 4 * 0.0125) / 6)
    empty = calibration(y, p, bins=10)
    assert empty.rows.sum() == 6 and np.isnan(empty.observed[empty.rows == 0]).all()
    assert list(empty.to_frame().columns) == [
        "bin_low",
        "bin_high",
        "predicted",
        "observed",
        "rows",
    ]


@settings(max_examples=100, deadline=None)
@given(labelled, st.sampled_from([0.1, 0.5, 0.7]))
def test_confusion_matches_the_confusion_metric(case, threshold: float) -> None:
    y, p = np.array(case[0]), np.array(case[1])
    cells = confusion(y, p, threshold=threshold).cells
    metric = ConfusionMatrix(threshold=threshold).compute(y, p)
    get = {k.rsplit("/", 1)[1]: v for k, v in metric.items()}
    assert cells == ((get["tn"], get["fp"]), (get["fn"], get["tp"]))


def test_confusion_frame_names_its_classes() -> None:
    frame = confusion([0, 1], [0.2, 0.9], labels=("<=50K", ">50K")).to_frame()
    assert list(frame.columns) == ["predicted <=50K", "predicted >50K"]
    assert frame.loc["actual >50K", "predicted >50K"] == 1


def test_slices_group_sliced_keys_by_column_and_metric() -> None:
    metrics = {
        "accuracy": 0.8,
        "accuracy[sex=Female]": 0.9,
        "accuracy[sex=Male]": 0.7,
        "auc[race=a=b]": 0.6,
        "eval2/auc[sex=Female]": 0.5,
        "precision@0.3": 0.4,
    }
    assert slices(metrics) == {
        "race": {"auc": {"a=b": 0.6}},
        "sex": {"accuracy": {"all": 0.8, "Female": 0.9, "Male": 0.7}, "eval2/auc": {"Female": 0.5}},
    }
    assert slices({"accuracy": 0.8}) == {}


def test_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="labels and scores differ in length: 2 vs 3"):
        roc_curve([0, 1], [0.1, 0.2, 0.3])
