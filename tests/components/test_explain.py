"""Permutation importance and linear weights (helix_tf.components.explain): numpy only."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from helix_tf.components.explain import Explain, linear_weights, permutation_importance
from helix_tf.errors import ConfigError

FEATURES = [
    {"name": "signal", "kind": "numeric"},
    {"name": "noise", "kind": "numeric"},
    {"name": "words", "kind": "bag"},
]


def data(n: int = 400, seed: int = 1) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = {
        "signal": (y + rng.normal(0, 0.7, n)).reshape(-1, 1),
        "noise": rng.normal(0, 1, n).reshape(-1, 1),
        "words__idx": rng.integers(0, 5, (n, 3)),
        "words__val": (y[:, None] * rng.uniform(0.5, 1, (n, 3))).astype(np.float32),
    }
    return x, y


class Scorer:
    """Reads ``signal`` and the bag's values, ignores ``noise``; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: Mapping[str, np.ndarray]) -> np.ndarray:
        self.calls += 1
        logit = x["signal"].ravel() + 0.5 * x["words__val"].sum(axis=1)
        return 1 / (1 + np.exp(-logit))


def test_features_the_model_reads_matter_and_the_others_do_not() -> None:
    x, y = data()
    out = permutation_importance(Scorer(), x, y, FEATURES, repeats=3, seed=0)
    f = out["features"]
    assert f["noise"]["auc"] == 0.0 and f["noise"]["log_loss"] == 0.0
    assert f["signal"]["auc"] > 0.05 and f["signal"]["log_loss"] > 0.05
    assert f["words"]["auc"] > 0.01  # both arrays of a bag are shuffled together
    assert list(f)[-1] == "noise"  # ordered by the first scoring, most important first
    assert out["rows"] == 400 and out["repeats"] == 3 and out["scoring"] == ["auc", "log_loss"]
    assert 0.5 < out["baseline"]["auc"] <= 1.0


def test_result_is_deterministic_and_seeded() -> None:
    x, y = data()
    a = permutation_importance(Scorer(), x, y, FEATURES, seed=4)
    b = permutation_importance(Scorer(), x, y, FEATURES, seed=4)
    c = permutation_importance(Scorer(), x, y, FEATURES, seed=5)
    assert a == b
    assert a["features"]["signal"] != c["features"]["signal"]


def test_zero_weight_features_are_not_scored() -> None:
    x, y = data()
    scorer = Scorer()
    out = permutation_importance(scorer, x, y, FEATURES, repeats=2, zero=["signal"])
    assert out["features"]["signal"] == {
        "auc": 0.0,
        "auc_std": 0.0,
        "log_loss": 0.0,
        "log_loss_std": 0.0,
    }
    assert scorer.calls == 1 + 2  # baseline, then the repeats of each other feature at once


def test_the_input_arrays_are_not_modified() -> None:
    x, y = data()
    before = {k: v.copy() for k, v in x.items()}
    permutation_importance(Scorer(), x, y, FEATURES)
    assert all(np.array_equal(x[k], before[k]) for k in x)


def test_linear_weights_name_values_and_keep_the_top_ones() -> None:
    weights = {
        "age": np.array([[0.4]]),
        "education": np.array([[0.0], [1.5], [-2.0], [0.3], [-0.1]]),
    }
    features = [{"name": "age", "kind": "numeric"}, {"name": "education", "kind": "categorical"}]
    names = {"education": ["HS-grad", "Doctorate", "Preschool", "Masters"]}  # index 4 unnamed
    out = linear_weights(weights, features, names, top=2)
    assert out["features"]["education"]["positive"] == [["Doctorate", 1.5], ["Masters", 0.3]]
    assert out["features"]["education"]["negative"] == [["Preschool", -2.0], ["#4", -0.1]]
    assert out["features"]["education"]["zero"] == 1
    assert out["features"]["age"]["positive"] == [["age", 0.4]]
    assert out["positive"] == [["education", "Doctorate", 1.5], ["age", "age", 0.4]]
    assert out["negative"] == [["education", "Preschool", -2.0], ["education", "#4", -0.1]]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"repeats": 0}, "repeats must be an integer >= 1, but got 0"),
        ({"max_rows": 2.5}, "max_rows must be an integer >= 1"),
        (
            {"scoring": ("auc", "f1")},
            r"scoring must name one or more of \['accuracy', 'auc', 'log_loss'",
        ),
        ({"scoring": ()}, "scoring must name one or more"),
    ],
)
def test_bad_parameters_are_config_errors(params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Explain(**params)


def test_one_scoring_from_the_command_line_is_a_tuple() -> None:
    assert Explain().with_params(scoring="log_loss").scoring == ("log_loss",)


def test_multiclass_importance_scores_class_probabilities() -> None:
    rng = np.random.default_rng(3)
    n = 300
    y = rng.integers(0, 3, n)
    x = {"signal": (y + rng.normal(0, 0.3, n)).reshape(-1, 1), "noise": rng.normal(0, 1, (n, 1))}

    def score(x: Mapping[str, np.ndarray]) -> np.ndarray:
        logits = -((x["signal"] - np.arange(3)) ** 2) * 4  # (rows, 3): near class k
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    features = FEATURES[:2]
    scoring = ("multiclass_accuracy", "multiclass_log_loss")
    out = permutation_importance(score, x, y, features, repeats=2, scoring=scoring)
    f = out["features"]
    assert out["baseline"]["multiclass_accuracy"] > 0.8
    assert f["signal"]["multiclass_accuracy"] > 0.4 and f["signal"]["multiclass_log_loss"] > 0.5
    assert f["noise"]["multiclass_accuracy"] == 0.0
    assert out["direction"] == {"multiclass_accuracy": 1, "multiclass_log_loss": -1}


def test_regression_importance_is_a_rise_of_rmse_and_a_drop_of_r2() -> None:
    rng = np.random.default_rng(4)
    n = 300
    x = {"signal": rng.normal(0, 1, (n, 1)), "noise": rng.normal(0, 1, (n, 1))}
    y = 3 * x["signal"].ravel() + rng.normal(0, 0.1, n) + 100
    out = permutation_importance(
        lambda x: 3 * x["signal"].ravel() + 100, x, y, FEATURES[:2], scoring=("rmse", "r2")
    )
    f = out["features"]
    assert out["baseline"]["rmse"] < 0.2 and out["baseline"]["r2"] > 0.99
    assert f["signal"]["rmse"] > 2 and f["signal"]["r2"] > 1  # worse: RMSE up, R² down
    assert f["noise"] == {"rmse": 0.0, "rmse_std": 0.0, "r2": 0.0, "r2_std": 0.0}
    assert list(f) == ["signal", "noise"]


def test_multiclass_linear_weights_are_kept_per_class() -> None:
    # Two values of "color" (rows) by three classes (columns); "size" is numeric.
    weights = {
        "color": np.array([[0.5, -0.2, 0.0], [0.0, 0.0, 0.0]]),
        "size": np.array([[0.0, 0.0, -0.9]]),
    }
    features = [{"name": "color", "kind": "categorical"}, {"name": "size", "kind": "numeric"}]
    out = linear_weights(
        weights, features, {"color": ["red", "blue"]}, top=5, classes=("a", "b", "c")
    )
    color = out["features"]["color"]
    assert color["weights"] == 6 and color["zero"] == 4
    assert color["classes"]["a"] == {"positive": [["red", 0.5]], "negative": []}
    assert color["classes"]["b"] == {"positive": [], "negative": [["red", -0.2]]}
    assert color["positive"] == [["red → a", 0.5]]
    assert out["positive"] == [["color", "red → a", 0.5]]
    assert out["negative"] == [["size", "size → c", -0.9], ["color", "red → b", -0.2]]
    assert out["classes"]["c"] == {"positive": [], "negative": [["size", "size", -0.9]]}
    # One output (binary, regression): as before, no classes.
    single = linear_weights({"size": np.array([[0.4]])}, features, {})
    assert single["positive"] == [["size", "size", 0.4]] and "classes" not in single
