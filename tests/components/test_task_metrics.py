"""Multiclass and regression metrics: values against hand computations and scikit-learn,
bootstrap intervals, slices, bad input, and which metric fits which label."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from helix_tf.components import features as F, metrics as M
from helix_tf.components.metrics import evaluate_task, metric_problem
from helix_tf.errors import DataError

sklearn_metrics = pytest.importorskip("sklearn.metrics")

CLASSES = ("a", "b", "c")


def _multiclass(n: int = 400, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def _regression(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.lognormal(7, 1, n)
    return y, y * np.exp(rng.normal(0, 0.2, n))


# --------------------------------------------------------------------------- by hand


def test_multiclass_metrics_by_hand() -> None:
    y = [0, 0, 1, 2, 2, 2]
    p = [
        [0.7, 0.2, 0.1],  # 0 -> 0
        [0.2, 0.5, 0.3],  # 0 -> 1 (second: 2; top-2 miss)
        [0.1, 0.8, 0.1],  # 1 -> 1
        [0.3, 0.3, 0.4],  # 2 -> 2
        [0.6, 0.1, 0.3],  # 2 -> 0 (top-2 hit)
        [0.1, 0.2, 0.7],  # 2 -> 2
    ]
    classes = M.MulticlassAccuracy(classes=CLASSES)
    assert classes.compute(y, p) == {"accuracy": 4 / 6}
    assert M.TopKAccuracy(k=2).compute(y, p) == {"top2_accuracy": 5 / 6}
    prf = M.MulticlassPrecisionRecallF1(classes=CLASSES).compute(y, p)
    # class a: tp 1, predicted 2, true 2; b: tp 1, predicted 2, true 1; c: tp 2, predicted 2, true 3
    assert prf["precision/a"] == 0.5 and prf["recall/a"] == 0.5 and prf["f1/a"] == 0.5
    assert prf["precision/b"] == 0.5 and prf["recall/b"] == 1.0
    assert prf["f1/b"] == pytest.approx(2 / 3)
    assert prf["precision/c"] == 1.0 and prf["recall/c"] == pytest.approx(2 / 3)
    assert prf["recall/macro"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert prf["recall/weighted"] == pytest.approx(4 / 6)  # weighted recall is accuracy
    confusion = M.MulticlassConfusionMatrix(classes=CLASSES).compute(y, p)
    assert confusion["confusion/a/a"] == 1 and confusion["confusion/a/b"] == 1
    assert confusion["confusion/c/a"] == 1 and confusion["confusion/c/c"] == 2
    assert sum(confusion.values()) == 6 and len(confusion) == 9
    loss = M.MulticlassLogLoss().compute(y, p)["log_loss"]
    assert loss == pytest.approx(-np.mean(np.log([0.7, 0.2, 0.8, 0.4, 0.3, 0.7])))


def test_one_vs_rest_auc_by_hand_with_ties() -> None:
    # class 0 vs rest on scores [.5, .5, .2, .9]: positives rows 0, 3; negatives rows 1, 2.
    y = [0, 1, 1, 0]
    p = [[0.5, 0.5], [0.5, 0.5], [0.2, 0.8], [0.9, 0.1]]
    out = M.OneVsRestAUC().compute(y, p)
    # pairs (pos, neg): (0,1) tie 0.5, (0,2) win, (3,1) win, (3,2) win -> 3.5 / 4
    assert out["auc_ovr/0"] == pytest.approx(3.5 / 4)
    assert out["auc_ovr/1"] == pytest.approx(3.5 / 4)
    assert out["auc_ovr/macro"] == pytest.approx(3.5 / 4)


def test_regression_metrics_by_hand() -> None:
    y, s = [1.0, 2.0, 4.0, 5.0], [1.5, 2.0, 3.0, 6.0]
    e = np.array(y) - np.array(s)  # -0.5, 0, 1, -1
    assert M.RMSE().compute(y, s) == {"rmse": pytest.approx(math.sqrt(np.mean(e**2)))}
    assert M.MAE().compute(y, s) == {"mae": pytest.approx(0.625)}
    sst = np.sum((np.array(y) - 3) ** 2)
    assert M.R2().compute(y, s) == {"r2": pytest.approx(1 - np.sum(e**2) / sst)}
    assert M.MAPE().compute(y, s)["mape"] == pytest.approx(np.mean(np.abs(e) / y))
    res = M.Residuals().compute(y, s)
    assert res["residual/mean"] == pytest.approx(e.mean())
    assert res["residual/std"] == pytest.approx(e.std())
    for q in (5, 25, 50, 75, 95):
        expected = np.quantile(e, q / 100, method="inverted_cdf")
        assert res[f"residual/p{q:02d}"] == pytest.approx(expected), q


def test_r2_of_constant_labels_is_nan() -> None:
    assert math.isnan(M.R2().compute([3.0, 3.0], [3.0, 2.0])["r2"])


# --------------------------------------------------------------------------- scikit-learn


def test_multiclass_metrics_match_scikit_learn() -> None:
    y, p = _multiclass()
    pred = p.argmax(axis=1)
    out = evaluate_task(
        [
            M.MulticlassAccuracy(),
            M.TopKAccuracy(k=2),
            M.MulticlassPrecisionRecallF1(),
            M.MulticlassLogLoss(),
            M.OneVsRestAUC(),
            M.MulticlassConfusionMatrix(),
        ],
        {"task": "multiclass", "classes": list(CLASSES)},
        y,
        p,
    )[0]
    assert out["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y, pred))
    assert out["top2_accuracy"] == pytest.approx(sklearn_metrics.top_k_accuracy_score(y, p, k=2))
    for avg in ("macro", "weighted"):
        for name, fn in (
            ("precision", sklearn_metrics.precision_score),
            ("recall", sklearn_metrics.recall_score),
            ("f1", sklearn_metrics.f1_score),
        ):
            assert out[f"{name}/{avg}"] == pytest.approx(fn(y, pred, average=avg)), (name, avg)
    per_class = sklearn_metrics.f1_score(y, pred, average=None)
    for i, c in enumerate(CLASSES):
        assert out[f"f1/{c}"] == pytest.approx(per_class[i])
    assert out["log_loss"] == pytest.approx(sklearn_metrics.log_loss(y, p))
    for avg in ("macro", "weighted"):
        expected = sklearn_metrics.roc_auc_score(y, p, multi_class="ovr", average=avg)
        assert out[f"auc_ovr/{avg}"] == pytest.approx(expected)
    cm = sklearn_metrics.confusion_matrix(y, pred)
    for i, t in enumerate(CLASSES):
        for j, q in enumerate(CLASSES):
            assert out[f"confusion/{t}/{q}"] == cm[i, j]


def test_regression_metrics_match_scikit_learn() -> None:
    y, s = _regression()
    out = evaluate_task(
        [M.RMSE(), M.MAE(), M.R2(), M.MAPE(), M.R2(scale="log"), M.RMSE(scale="log")],
        {"task": "regression", "transform": "log"},
        y,
        s,
    )[0]
    assert out["rmse"] == pytest.approx(math.sqrt(sklearn_metrics.mean_squared_error(y, s)))
    assert out["mae"] == pytest.approx(sklearn_metrics.mean_absolute_error(y, s))
    assert out["r2"] == pytest.approx(sklearn_metrics.r2_score(y, s))
    assert out["mape"] == pytest.approx(sklearn_metrics.mean_absolute_percentage_error(y, s))
    assert out["r2@log"] == pytest.approx(sklearn_metrics.r2_score(np.log(y), np.log(s)))
    rmse_log = math.sqrt(sklearn_metrics.mean_squared_error(np.log(y), np.log(s)))
    assert out["rmse@log"] == pytest.approx(rmse_log)


# --------------------------------------------------------------------------- intervals, slices


@pytest.mark.parametrize(
    "metric",
    [
        M.MulticlassAccuracy(),
        M.TopKAccuracy(k=2),
        M.MulticlassPrecisionRecallF1(),
        M.MulticlassLogLoss(),
        M.OneVsRestAUC(),
        M.MulticlassConfusionMatrix(),
    ],
    ids=lambda m: m.op_name,
)
def test_multiclass_intervals_cover_the_value_and_are_seeded(metric: M.Metric) -> None:
    y, p = _multiclass(300)
    values = metric.compute(y, p)
    intervals = metric.bootstrap(y, p, samples=100, seed=1)
    assert set(intervals) == set(values)
    for key, (low, high) in intervals.items():
        assert low <= values[key] + 1e-12 and values[key] - 1e-12 <= high, key
    assert metric.bootstrap(y, p, samples=100, seed=1) == intervals


@pytest.mark.parametrize(
    "metric", [M.RMSE(), M.MAE(), M.R2(), M.MAPE(), M.Residuals()], ids=lambda m: m.op_name
)
def test_regression_intervals_cover_the_value_and_are_seeded(metric: M.Metric) -> None:
    y, s = _regression(500)
    values = metric.compute(y, s)
    intervals = metric.bootstrap(y, s, samples=200, seed=2)
    assert set(intervals) == set(values)
    for key, (low, high) in intervals.items():
        assert low < high and low <= values[key] <= high, key
    assert metric.bootstrap(y, s, samples=200, seed=2) == intervals


def test_regression_bootstrap_matches_resampling_rows() -> None:
    """The vectorised per-row-count bootstrap equals recomputing on resampled rows."""
    y, s = _regression(50)
    metric = M.R2()
    rng = np.random.default_rng(0)
    draws = metric._resample(y, s, None, 5, rng)["r2"]
    rng = np.random.default_rng(0)
    expected = []
    for _ in range(5):
        counts = rng.multinomial(50, np.full(50, 1 / 50))
        rows = np.repeat(np.arange(50), counts)
        expected.append(sklearn_metrics.r2_score(y[rows], s[rows]))
    np.testing.assert_allclose(draws, expected)


def test_sliced_multiclass_and_regression_metrics() -> None:
    y, p = _multiclass(60)
    frame = pd.DataFrame({"g": ["x", "y"] * 30})
    out = M.MulticlassAccuracy(slice_by="g").compute(y, p, frame)
    mask = frame["g"].to_numpy() == "x"
    assert out["accuracy[g=x]"] == pytest.approx((p[mask].argmax(1) == y[mask]).mean())
    yr, sr = _regression(60)
    out = M.RMSE(scale="log", slice_by="g").compute(np.log(yr), np.log(sr), frame)
    assert set(out) == {"rmse@log", "rmse@log[g=x]", "rmse@log[g=y]"}


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1], [0.2, 0.8], r"one probability per class"),
        ([0, 3], [[0.5, 0.5], [0.5, 0.5]], r"class indices 0\.\.1"),
        ([0, 1], [[0.5, 0.5], [1.5, -0.5]], r"probabilities in \[0, 1\].*row 1"),
        ([0], [[0.5, 0.5], [0.5, 0.5]], r"same length"),
    ],
)
def test_multiclass_bad_input(y: list, p: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        M.MulticlassAccuracy().compute(y, p)


def test_regression_bad_input() -> None:
    with pytest.raises(DataError, match=r"finite numbers.*row 1"):
        M.RMSE().compute([1.0, np.nan], [1.0, 2.0])


def test_class_names_must_match_the_scores() -> None:
    with pytest.raises(DataError, match="2 class names for 3 score columns"):
        M.MulticlassAccuracy(classes=("a", "b")).compute([0], [[0.2, 0.3, 0.5]])


# --------------------------------------------------------------------------- fit to the label


@pytest.mark.parametrize(
    ("metric", "label", "match"),
    [
        (M.AUC(), F.NumericLabel("price"), r"AUC\(\) fits binary labels.*NumericLabel\('price'\)"),
        (M.Accuracy(), F.MulticlassLabel("cut"), r"use metrics\.MulticlassAccuracy"),
        (M.RMSE(), F.Label("y", positive=1), r"RMSE\(\) fits regression labels.*Label\('y'\)"),
        (M.OneVsRestAUC(), F.Label("y"), r"use metrics\.AUC"),
        (M.MAE(), F.MulticlassLabel("cut"), r"makes a multiclass task"),
        (M.R2(scale="log"), F.NumericLabel("price"), r"scale='log'.*has no transform"),
        (M.R2(scale="log1p"), F.NumericLabel("p", transform="log"), r"use scale='original' or"),
        (
            M.TopKAccuracy(k=3),
            F.MulticlassLabel("c", classes=("a", "b", "c")),
            r"top 3 of 3 classes.*every row is a hit; use k < 3",
        ),
    ],
)
def test_metric_problem_names_metric_and_label(metric: M.Metric, label: object, match: str) -> None:
    problem = metric_problem(metric, label)
    assert problem is not None
    assert re.search(match, problem), problem


@pytest.mark.parametrize(
    ("metric", "label"),
    [
        (M.AUC(), F.Label("y", positive=1)),
        (M.MulticlassAccuracy(), F.MulticlassLabel("cut")),
        (M.R2(scale="log"), F.NumericLabel("price", transform="log")),
        (M.RMSE(), F.NumericLabel("price")),
        (M.TopKAccuracy(k=3), F.MulticlassLabel("c", classes=("a", "b", "c"), unseen="other")),
        (M.TopKAccuracy(k=9), F.MulticlassLabel("c")),  # learned classes: unknown until run
    ],
)
def test_fitting_metrics_have_no_problem(metric: M.Metric, label: object) -> None:
    assert metric_problem(metric, label) is None


@pytest.mark.parametrize("transform", ["log", "log1p", "sqrt"])
def test_every_scale_a_numeric_label_documents_fits_it(transform: str) -> None:
    # QA 28: NumericLabel's docs named scale="transformed", which every label refuses.
    label = F.NumericLabel("price", transform=transform)
    spelled = re.findall(r"scale=\"(\w+)\"", F.NumericLabel.__doc__ or "")
    assert spelled
    for scale in spelled:
        metric = M.R2(scale=transform if scale == "log" else scale)
        assert metric_problem(metric, label) is None, scale


@pytest.mark.parametrize(
    ("y", "p", "what"),
    [
        ([10.0, 0.0, 5.0], [9.0, 2.0, 5.0], "label 0.0"),
        ([10.0, 3.0], [9.0, -0.5], "prediction -0.5"),
    ],
)
def test_a_value_outside_a_metric_scale_names_its_line_and_the_fix(
    y: list[float], p: list[float], what: str
) -> None:
    # QA 28: a test label of 0 under scale="log" failed "y_true must be finite numbers,
    # but got -inf at row 1": a position in the predictions, the transformed value, no fix.
    label = {"task": "regression", "transform": "log"}
    lines = {i: f"line {i + 2} of test.csv" for i in range(3)}
    metrics = [M.R2(scale="log"), M.RMSE(scale="log"), M.RMSE()]
    with pytest.raises(DataError) as raised:
        evaluate_task(metrics, label, y, p, describe=lines.__getitem__)
    message = str(raised.value)
    assert f"line 3 of test.csv has {what}, but scale='log' needs values > 0" in message
    assert "R2(scale='log'), RMSE(scale='log')" in message and "use scale='original'" in message
    with pytest.raises(DataError, match=f"row 1 of the predictions has {what}"):
        evaluate_task(metrics, label, y, p)


def test_docstring_examples() -> None:
    y = [0, 1, 2]
    p = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.5, 0.3, 0.2]]
    assert M.MulticlassAccuracy().compute(y, p) == {"accuracy": 0.6666666666666666}
    assert M.RMSE().compute([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]) == {"rmse": 1.1547005383792515}
