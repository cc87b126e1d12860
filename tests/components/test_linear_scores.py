"""An approximate run's scoring of a linear model in numpy (helix_tf.components._linear_scores):
the scores of the model's traced function, for every head and feature kind, with no function
traced; other models are scored as before."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from helix_tf.components import _linear_scores, _model_use, learners
from tests.components import test_trainers as t


def _trained(learner: Any, task: str, **head: Any) -> tuple[Any, dict[str, np.ndarray]]:
    from helix_tf.components import keras_models as km

    features, x, y = t._data(task)
    model, _ = km.train_model(
        learner, features, x, y, head=km.Head(task=task, classes=3, **head), light=True
    )
    return model, x


LINEAR = learners.Linear(epochs=2, batch_size=32, learning_rate=0.1)


@pytest.mark.parametrize(
    ("learner", "task"),
    [
        (LINEAR, "binary"),
        (dataclasses.replace(LINEAR, optimizer="ftrl", l1=1e-3), "multiclass"),
        (LINEAR, "regression"),  # its Rescale layer: the target's own scale
    ],
)
def test_a_linear_models_numpy_scores_are_its_traced_functions(
    learner: Any, task: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")
    model, x = _trained(learner, task)
    traced: list[Any] = []
    trace = _model_use._traced_call
    monkeypatch.setattr(_model_use, "_traced_call", lambda *a: traced.append(1) or trace(*a))
    ours = _model_use.predict_scores(model, x, task, traced=True)
    assert traced == []  # nothing traced
    monkeypatch.setattr(_model_use, "linear_scorer", lambda model, **kw: None)
    theirs = _model_use.predict_scores(model, x, task, traced=True)
    assert traced == [1]
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert np.ptp(ours) > 0  # it scored something
    # The same bits every time (the explanation's scorer calls it once a feature).
    np.testing.assert_array_equal(ours, _model_use.predict_scores(model, x, task, traced=True))


def test_other_models_are_scored_by_their_traced_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")
    for learner in (learners.DNN(hidden=(4,), epochs=1), learners.WideDeep(hidden=(4,), epochs=1)):
        model, _ = _trained(learner, "binary")
        assert _linear_scores.linear_scorer(model) is None


def test_an_index_outside_its_features_weights_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")
    model, x = _trained(LINEAR, "binary")
    for bad in (-1, 6):  # numpy would wrap -1 to the last weight
        wrong = {**x, "cat": np.where(np.arange(t.ROWS)[:, None] == 3, bad, x["cat"])}
        with pytest.raises(ValueError, match=f"feature 'cat': index {bad} is outside its 6"):
            _model_use.predict_scores(model, wrong, "binary", traced=True)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_an_exact_runs_linear_model_without_bags_scores_the_eager_calls_bits(
    task: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exact run's scores stay Keras' eager call's to the bit (its fingerprints say
    nothing of numpy), over more features than one (the parts' order is the sum's)."""
    from helix_tf.components import keras_models as km

    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")
    rng = np.random.default_rng(5)
    n = 600
    features: list[dict[str, Any]] = [
        *({"name": f"n{i}", "kind": "numeric"} for i in range(3)),
        *({"name": f"c{i}", "kind": "categorical", "size": 9} for i in range(4)),
    ]
    x = {
        f["name"]: rng.normal(size=(n, 1)).astype(np.float32)
        if f["kind"] == "numeric"
        else rng.integers(0, 9, (n, 1)).astype(np.int32)
        for f in features
    }
    y = {
        "binary": (rng.random(n) < 0.3).astype(np.float32),
        "multiclass": rng.integers(0, 3, n).astype(np.float32),
        "regression": (rng.normal(size=n) * 5 + 3).astype(np.float32),
    }[task]
    head = km.Head(task=task, classes=3)
    model, _ = km.train_model(LINEAR, features, x, y, head=head)
    eager: list[int] = []
    call = _model_use._eager_call
    monkeypatch.setattr(_model_use, "_eager_call", lambda m: eager.append(1) or call(m))
    ours = _model_use.predict_scores(model, x, task)
    assert eager == []  # numpy, no layer called
    monkeypatch.setattr(_model_use, "linear_scorer", lambda model, **kw: None)
    np.testing.assert_array_equal(ours, _model_use.predict_scores(model, x, task))
    assert eager == [1]


def test_an_exact_runs_model_with_a_bag_is_scored_by_the_eager_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TensorFlow sums a bag's words in vector-wide packets: numpy would not give its bits."""
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")
    model, _ = _trained(LINEAR, "binary")  # the test data has a bag feature
    assert _linear_scores.linear_scorer(model, eager_bits=True) is None
    assert _linear_scores.linear_scorer(model) is not None
