"""Every learner for every task: heads and losses follow the label (keras_models.Head)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helix_tf.components import learners
from tests.components.test_learners import _data

LEARNERS = {
    "linear": learners.Linear(epochs=3, batch_size=32, learning_rate=0.1),
    "dnn": learners.DNN(hidden=(16,), embedding_dim=2, epochs=3, batch_size=32),
    "widedeep": learners.WideDeep(hidden=(8,), embedding_dim=2, epochs=3, batch_size=32),
}


@pytest.fixture(scope="module")
def km() -> Any:
    from helix_tf.components import keras_models

    return keras_models


def _inputs(km: Any, n: int = 300) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], Any]:
    table, features = _data(n)
    return km.arrays_from_table(table, features), features, table


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_multiclass_heads_give_class_probabilities(km: Any, name: str, tmp_path: Path) -> None:
    x, features, _ = _inputs(km)
    y = np.digitize(x["x"][:, 0], [-0.5, 0.5]).astype(np.int64)  # 3 classes from x
    model, stats = km.train_model(
        LEARNERS[name], features, x, y, head=km.Head(task="multiclass", classes=3)
    )
    p = km.predict_scores(model, x, "multiclass")
    assert p.shape == (300, 3) and np.allclose(p.sum(axis=1), 1)
    # An approximate run's traced scoring (issue 9) gives the same probabilities.
    np.testing.assert_allclose(km.predict_scores(model, x, "multiclass", traced=True), p, rtol=1e-6)
    assert (p.argmax(axis=1) == y).mean() > 0.6 and np.isfinite(stats["train_loss"])
    path = str(tmp_path / "m.keras")
    km.save_model(model, path)
    np.testing.assert_allclose(
        km.predict_scores(km.load_model(path), x, "multiclass"), p, rtol=1e-5
    )


@pytest.mark.parametrize(
    "loss", ["squared", *(pytest.param(x, marks=pytest.mark.slow) for x in ("absolute", "huber"))]
)
@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_regression_heads_predict_on_the_targets_scale(
    km: Any, name: str, loss: str, tmp_path: Path
) -> None:
    x, features, _ = _inputs(km)
    y = 1000 + 250 * x["x"][:, 0].astype(np.float64)  # far from 0 and 1: the head rescales
    head = km.Head(task="regression", loss=loss)
    model, stats = km.train_model(LEARNERS[name], features, x, y, head=head)
    assert stats["target_mean"] == pytest.approx(y.mean())
    s = km.predict_scores(model, x, "regression")
    assert s.shape == (300,)
    np.testing.assert_allclose(km.predict_scores(model, x, "regression", traced=True), s, rtol=1e-6)
    assert abs(s.mean() - y.mean()) < 100 and np.corrcoef(s, y)[0, 1] > 0.8
    path = str(tmp_path / "r.keras")
    km.save_model(model, path)
    np.testing.assert_allclose(
        km.predict_scores(km.load_model(path), x, "regression"), s, rtol=1e-5
    )


def test_multiclass_linear_weights_start_at_zero_and_prune_per_feature(km: Any) -> None:
    x, features, _ = _inputs(km, 200)
    y = np.digitize(x["x"][:, 0], [-0.5, 0.5]).astype(np.int64)
    learner = learners.Linear(optimizer="ftrl", l1=50.0, epochs=1, batch_size=64)
    model, _ = km.train_model(learner, features, x, y, head=km.Head(task="multiclass", classes=3))
    weights = km.feature_weights(model, features)
    assert weights["cat"].shape == (4, 3) and weights["x"].shape == (1, 3)
    facts = km.zero_weight_features(model, learner, features)
    assert facts["zero"] == {"x": 3, "cat": 12, "words": 18}  # every class, every index


def test_the_binary_head_is_unchanged(km: Any) -> None:
    x, features, table = _inputs(km, 200)
    y = km.labels_from_table(table)
    learner = learners.Linear(epochs=1, batch_size=64)
    default = km.predict_scores(km.train_model(learner, features, x, y)[0], x)
    explicit = km.predict_scores(km.train_model(learner, features, x, y, head=km.Head())[0], x)
    np.testing.assert_array_equal(default, explicit)
    assert default.shape == (200,)
