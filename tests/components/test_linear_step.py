"""The light loop's one-table step for linear learners (helix_tf.components._linear_step):
the training Keras' own step gives, for every head, feature kind, optimizer and penalty
it takes, in fewer graph nodes; the same bits on a kept trainer and a fresh one."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from helix_tf.components import _light_fit, _linear_step, learners
from tests.components import test_light_fit as lf, test_trainers as t


def _keras_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_linear_step, "layout_of", lambda *a, **k: None)


def _train(learner: Any, task: str, **kw: Any) -> tuple[list[np.ndarray], list[float], Any]:
    from helix_tf.components import keras_models as km

    features, x, y = t._data(task)
    losses: list[float] = []
    model, _ = km.train_model(
        learner,
        features,
        x,
        y,
        head=km.Head(task=task, classes=3, **kw),
        on_epoch=lambda e, n, loss, s: losses.append(loss),
        light=True,
    )
    return [np.asarray(w) for w in model.get_weights()], losses, km.predict_scores(model, x, task)


LINEAR = learners.Linear(epochs=3, batch_size=32, learning_rate=0.05)


# Every optimizer the one-table step takes, both penalties and each alone (FTRL: in its
# update), binary, multiclass and each regression loss, numeric, categorical and bag
# features together.
@pytest.mark.parametrize(
    ("change", "task", "head"),
    [
        ({"optimizer": "adam", "l2": 1e-3}, "binary", {}),
        ({"optimizer": "sgd", "l1": 1e-3, "l2": 2e-3}, "binary", {}),
        ({"optimizer": "ftrl", "l1": 1e-2}, "binary", {}),
        ({"optimizer": "ftrl", "l1": 1e-2, "l2": 1e-3}, "multiclass", {}),
        ({"optimizer": "adam", "l1": 1e-3}, "multiclass", {}),
        ({"optimizer": "adam", "l2": 0.0}, "regression", {}),
        ({"optimizer": "sgd", "l2": 1e-3}, "regression", {"loss": "huber"}),
        ({"optimizer": "adam"}, "regression", {"loss": "absolute"}),
    ],
)
def test_the_one_table_step_trains_as_kerass_step_does(
    change: dict[str, Any], task: str, head: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")
    learner = dataclasses.replace(LINEAR, **change)
    traced: list[Any] = []
    one_table = _linear_step.epoch_function
    monkeypatch.setattr(
        _linear_step, "epoch_function", lambda *a: traced.append(a) or one_table(*a)
    )
    weights, losses, scores = _train(learner, task, **head)
    assert len(traced) == 1  # the one-table step, not Keras'
    _keras_step(monkeypatch)
    keras_weights, keras_losses, keras_scores = _train(learner, task, **head)
    assert len(traced) == 1
    assert len(weights) == len(keras_weights)
    for ours, theirs in zip(weights, keras_weights, strict=True):
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(losses, keras_losses, rtol=1e-5)
    np.testing.assert_allclose(scores, keras_scores, rtol=1e-4, atol=1e-6)
    assert any((w != 0).any() for w in weights)  # it trained


def test_a_kept_trainers_one_table_step_gives_a_fresh_trainers_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Traced once and kept: the next training (another learning rate and penalty)
    traces nothing and gives the bits of a fresh trainer's step."""
    from helix_tf.components.trainers import TRAINERS

    learner = dataclasses.replace(LINEAR, optimizer="ftrl", l1=1e-2)
    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")
    TRAINERS.clear()
    _train(learner, "binary")
    traced: list[int] = []
    one_table = _linear_step.epoch_function
    monkeypatch.setattr(
        _linear_step, "epoch_function", lambda *a: traced.append(1) or one_table(*a)
    )
    changed = dataclasses.replace(learner, l1=2e-2, learning_rate=0.1)
    kept = _train(changed, "binary")
    assert traced == [] and TRAINERS.stats()["reuses"] >= 1
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")
    fresh = _train(changed, "binary")
    assert traced == [1]
    for a, b in zip(kept[0], fresh[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert kept[1] == fresh[1]
    np.testing.assert_array_equal(kept[2], fresh[2])


def test_the_one_table_step_has_fewer_nodes_than_kerass() -> None:
    from helix_tf.components import keras_models as km

    def step_nodes(one_table: bool) -> int:
        learner = dataclasses.replace(LINEAR, optimizer="ftrl", l1=1e-2)
        features, x, y = t._data("binary")
        _, trainer = km._trainer(learner, features, km.Head(), False, "float32", True)
        linear = _linear_step.light_arguments(
            trainer, learner, features, km.Head(), policy="float32", run_eagerly=False
        )
        assert linear is not None
        _, step = _light_fit.light_fit(
            trainer.model,
            x,
            y,
            batch_size=32,
            epochs=1,
            seed=0,
            linear=linear if one_table else None,
        )
        if one_table:
            kept = step.traced["step"]
            return lf._body_nodes(lambda: kept)
        return lf._body_nodes(step)

    assert step_nodes(True) < step_nodes(False)


@pytest.mark.parametrize(
    ("learner", "policy", "eager"),
    [
        (learners.DNN(hidden=(4,)), "float32", False),
        (learners.WideDeep(hidden=(4,), wide=("cat",)), "float32", False),
        (dataclasses.replace(LINEAR, optimizer="adagrad"), "float32", False),
        (dataclasses.replace(LINEAR, optimizer="rmsprop"), "float32", False),
        (LINEAR, "mixed_bfloat16", False),
        (LINEAR, "float32", True),
    ],
)
def test_other_models_keep_kerass_step(learner: Any, policy: str, eager: bool) -> None:
    from helix_tf.components import keras_models as km
    from helix_tf.components._keras_layers import dtypes

    features, _, _ = t._data("binary")
    with dtypes(policy):
        _, trainer = km._trainer(learner, features, km.Head(), eager, policy, True)
    assert (
        _linear_step.light_arguments(
            trainer, learner, features, km.Head(), policy=policy, run_eagerly=eager
        )
        is None
    )


def test_an_index_outside_its_features_weights_is_named() -> None:
    """Keras' lookup fails on it; one table would read another feature's weight."""
    from helix_tf.components import keras_models as km

    features, x, y = t._data("binary")
    x = {**x, "tags__idx": np.where(np.arange(t.ROWS)[:, None] == 7, 5, x["tags__idx"])}
    with pytest.raises(ValueError, match="feature 'tags': index 5 is outside its 5 weights"):
        km.train_model(LINEAR, features, x, y, head=km.Head(), light=True)
