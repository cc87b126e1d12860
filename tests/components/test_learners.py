"""Learner specs (validation, overrides) and their Keras executor on tiny data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from helix_tf import learners
from helix_tf.components.features import Bag
from helix_tf.engine import tables
from helix_tf.errors import ConfigError
from helix_tf.types import LABEL

# --------------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (learners.Linear, {"optimizer": "adamw"}, "optimizer must be one of"),
        (learners.Linear, {"learning_rate": 0}, "learning_rate must be > 0"),
        (learners.Linear, {"epochs": 0}, "epochs must be an integer >= 1"),
        (learners.Linear, {"epochs": 1.5}, "epochs must be an integer >= 1"),
        (learners.Linear, {"batch_size": 0}, "batch_size must be an integer >= 1"),
        (learners.Linear, {"l1": -0.1}, "l1 must be >= 0"),
        (learners.Linear, {"l2": "big"}, "l2 must be >= 0"),
        (learners.DNN, {"hidden": ()}, "hidden must be positive layer widths"),
        (learners.DNN, {"hidden": (8, 0)}, "hidden must be positive layer widths"),
        (learners.DNN, {"embedding_dim": 0}, "embedding_dim must be an integer >= 1"),
        (
            learners.DNN,
            {"embedding_dim": 8.0},
            "embedding_dim must be an integer >= 1, but got 8.0",
        ),
        (learners.DNN, {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        (learners.WideDeep, {"dropout": -0.5}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_learner_rejects_bad_parameters(cls: type, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)


def test_all_problems_of_a_learner_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        learners.Linear(epochs=0, l1=-1, optimizer="nope")
    assert len(info.value.problems) == 3


def test_with_params_replaces_and_revalidates() -> None:
    base = learners.Linear(l2=1e-4)
    changed = base.with_params(l1=0.001, epochs=2)
    assert (changed.l1, changed.epochs, changed.l2) == (0.001, 2, 1e-4)
    assert base.l1 == 0.0  # specs are immutable
    with pytest.raises(ConfigError, match=r"has no parameter 'l11' \(did you mean 'l1'\?\)"):
        base.with_params(l11=0.1)
    with pytest.raises(ConfigError, match="l1 must be >= 0"):
        base.with_params(l1=-1.0)


def test_wide_deep_feature_selection() -> None:
    everything = learners.WideDeep()
    assert everything.features_for("wide", ["a", "b"]) == ("a", "b")
    chosen = learners.WideDeep(wide=("a",), deep=("b",))
    assert chosen.features_for("wide", ["a", "b"]) == ("a",)
    assert chosen.features_for("deep", ["a", "b"]) == ("b",)


# --------------------------------------------------------------------------- Keras


def _data(n: int = 400, seed: int = 0) -> tuple[pa.Table, list[dict[str, Any]]]:
    """An examples table whose label follows x, the category and the words (learnable)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(np.float32)
    cat = rng.integers(0, 4, size=n).astype(np.int32)
    words = [sorted(set(rng.integers(0, 6, size=rng.integers(0, 3)).tolist())) for _ in range(n)]
    logit = (
        3 * x + np.where(cat == 1, 2.0, -0.5) + np.array([2.0 if 5 in w else 0.0 for w in words])
    )
    y = (logit > 0).astype(np.int8)
    lengths = [len(w) for w in words]
    bag = Bag(
        np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        np.asarray([i for w in words for i in w], dtype=np.int32),
        np.ones(sum(lengths), dtype=np.float32),
    )
    cols = {
        **tables.feature_columns("x", "numeric", x),
        **tables.feature_columns("cat", "categorical", cat),
        **tables.feature_columns("words", "bag", bag),
        LABEL: pa.array(y, pa.int8()),
    }
    features = [
        {"name": "x", "kind": "numeric"},
        {"name": "cat", "kind": "categorical", "size": 4},
        {"name": "words", "kind": "bag", "size": 6},
    ]
    return pa.table(cols), features


@pytest.fixture(scope="module")
def km() -> Any:
    from helix_tf.components import keras_models

    return keras_models


def test_bag_inputs_are_padded_with_zero_weights(km: Any) -> None:
    bag = Bag(
        np.array([0, 2, 2, 3]), np.array([4, 1, 3], np.int32), np.array([0.5, 2, 1], np.float32)
    )
    table = pa.table(tables.feature_columns("w", "bag", bag))
    x = km.arrays_from_table(table, [{"name": "w", "kind": "bag", "size": 5}])
    assert x["w__idx"].tolist() == [[4, 1], [0, 0], [3, 0]]
    assert x["w__val"].tolist() == [[0.5, 2.0], [0.0, 0.0], [1.0, 0.0]]


def test_linear_model_learns_numeric_categorical_and_bag_features(km: Any) -> None:
    table, features = _data()
    x, y = km.arrays_from_table(table, features), km.labels_from_table(table)
    learner = learners.Linear(epochs=4, batch_size=32, learning_rate=0.1)
    model, stats = km.train_model(learner, features, x, y)
    scores = km.predict_scores(model, x)
    assert scores.shape == (len(y),)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert ((scores > 0.5) == (y > 0.5)).mean() > 0.9
    assert np.isfinite(stats["train_loss"])


def test_training_is_deterministic_for_a_seed(km: Any) -> None:
    table, features = _data(200)
    x, y = km.arrays_from_table(table, features), km.labels_from_table(table)
    learner = learners.Linear(epochs=1, batch_size=64)
    first = km.predict_scores(km.train_model(learner, features, x, y)[0], x)
    second = km.predict_scores(km.train_model(learner, features, x, y)[0], x)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize(
    "learner",
    [
        learners.DNN(hidden=(8,), embedding_dim=2, epochs=1, batch_size=64, dropout=0.1),
        learners.WideDeep(hidden=(8,), embedding_dim=2, epochs=1, batch_size=64, wide=("cat",)),
        learners.Linear(optimizer="ftrl", l1=0.01, epochs=1, batch_size=64),
    ],
    ids=["dnn", "wide_deep", "linear_ftrl"],
)
def test_other_learners_train_save_and_load(km: Any, learner: Any, tmp_path: Path) -> None:
    table, features = _data(200)
    x, y = km.arrays_from_table(table, features), km.labels_from_table(table)
    model, _ = km.train_model(learner, features, x, y)
    scores = km.predict_scores(model, x)
    assert scores.shape == (200,) and np.isfinite(scores).all()
    path = str(tmp_path / "model.keras")
    km.save_model(model, path)
    np.testing.assert_allclose(km.predict_scores(km.load_model(path), x), scores, rtol=1e-5)


@pytest.mark.parametrize(
    "learner",
    [
        learners.Linear(epochs=1, batch_size=64),
        learners.DNN(hidden=(8,), embedding_dim=2, epochs=1, batch_size=64),
        learners.WideDeep(hidden=(8,), embedding_dim=2, epochs=1, batch_size=64, wide=("cat",)),
    ],
    ids=["linear", "dnn", "wide_deep"],
)
def test_traced_scoring_scores_as_the_eager_call_and_traces_once_per_model(
    km: Any, learner: Any, tmp_path: Path
) -> None:
    """An approximate run's model is scored by one traced function (issue 9): the eager
    call's scores (to rounding), traced once per model whatever the number of rows, and
    permutation importance scored the same way; a linear model in numpy, nothing traced
    (session 17, ``components._linear_scores``)."""
    table, features = _data(200)
    x, y = km.arrays_from_table(table, features), km.labels_from_table(table)
    model, _ = km.train_model(learner, features, x, y)
    eager = km.predict_scores(model, x)
    np.testing.assert_allclose(km.predict_scores(model, x, traced=True), eager, rtol=1e-6)
    kept = dict(model.__dict__.get("_helix_scorers", {}))
    assert len(kept) == (0 if type(learner) is learners.Linear else 1)
    fewer = {k: v[:37] for k, v in x.items()}
    np.testing.assert_allclose(km.predict_scores(model, fewer, traced=True), eager[:37], rtol=1e-6)
    assert model.__dict__.get("_helix_scorers", {}) == kept  # no second trace for fewer rows
    params = {"task": "binary", "repeats": 2, "seed": 0, "scoring": ["auc"], "zero": []}
    traced = km.model_importance(model, x, y, features, traced=True, **params)
    plain = km.model_importance(model, x, y, features, **params)
    for name, values in plain["features"].items():
        assert traced["features"][name]["auc"] == pytest.approx(values["auc"], abs=1e-6)
    km.save_model(model, str(tmp_path / "model.keras"))  # the kept function is not saved
    np.testing.assert_array_equal(
        km.predict_scores(km.load_model(str(tmp_path / "model.keras")), x), eager
    )


def test_examples_of_a_string_kind_are_rejected(km: Any) -> None:
    table = pa.table({"s": pa.array(["a", "b"])})
    with pytest.raises(ValueError, match="cannot read"):
        km.arrays_from_table(table, [{"name": "s", "kind": "string"}])


def test_graph_training_traces_its_step_once(km: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Optimizer slots are created before fit: a slot created inside the first traced step
    makes TensorFlow trace the step a second time (~0.4 s of every training run)."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traced: list[int] = []
    original = TensorFlowTrainer.train_step

    def counting(self: Any, data: Any) -> Any:
        traced.append(1)  # Python runs only while TensorFlow traces
        return original(self, data)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counting)
    table, features = _data(400)
    x, y = km.arrays_from_table(table, features), km.labels_from_table(table)
    steps = -(-400 // 32) * 3
    assert steps > km.EAGER_MAX_STEPS  # graph mode
    from helix_tf.components.trainers import TRAINERS

    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")  # kept, as in the server's trainer
    TRAINERS.clear()
    km.train_model(learners.Linear(epochs=3, batch_size=32), features, x, y)
    assert len(traced) == 1
    # The same graph with another learning rate and epochs: the traced step is reused.
    km.train_model(learners.Linear(epochs=4, batch_size=32, learning_rate=0.1), features, x, y)
    assert len(traced) == 1


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_works_and_restores_the_policy(km: Any, precision: str) -> None:
    import keras

    table, features = _data(200)
    x, y = km.arrays_from_table(table, features), km.labels_from_table(table)
    learner = learners.DNN(hidden=(8,), embedding_dim=2, epochs=1, batch_size=64)
    model, stats = km.train_model(learner, features, x, y, precision=precision)
    assert np.isfinite(stats["train_loss"])
    assert np.isfinite(km.predict_scores(model, x)).all()
    assert keras.mixed_precision.global_policy().name == "float32"


# ------------------------------------------------------------ numbers spelled by numpy (QA 7)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True])
def test_a_penalty_that_is_no_finite_number_is_refused(bad: object) -> None:
    """NaN passed ``v < 0`` and trained to NaN weights; True is no strength."""
    with pytest.raises(ConfigError, match="l2 must be >= 0"):
        learners.Linear(l2=bad)


@settings(max_examples=40, deadline=None)
@given(
    x=st.floats(min_value=1e-12, max_value=10.0, allow_nan=False),
    epochs=st.integers(1, 50),
    width=st.integers(1, 64),
)
def test_numpy_numbers_are_the_numbers_they_hold(x: float, epochs: int, width: int) -> None:
    """For every value: a learner given numpy scalars keeps the Python numbers they hold,
    so it computes and hashes as one given those numbers (``np.float64(x)`` as ``x``,
    ``np.float32(x)`` as the float32's exact value); before, ``np.float32`` was refused as
    "must be > 0" and ``np.float64`` hashed apart from the same Python number."""
    from helix_tf.compiler.hashing import canonical_json

    given_numpy = learners.DNN(
        learning_rate=np.float64(x),
        l2=np.float32(x),
        epochs=np.int64(epochs),
        hidden=(np.int32(width),),
    )
    plain = learners.DNN(learning_rate=x, l2=float(np.float32(x)), epochs=epochs, hidden=(width,))
    assert given_numpy == plain
    assert canonical_json(given_numpy.fingerprint_params()) == canonical_json(
        plain.fingerprint_params()
    )
    assert type(given_numpy.learning_rate) is float and type(given_numpy.epochs) is int
