"""The approximate runs' light training loop (helix_tf.components._light_fit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from helix_tf.components import _light_fit
from tests.components import test_trainers as t


def _model() -> tuple[Any, dict[str, Any], Any]:
    """A small compiled two-input model and its sample, held as tensors (as light_fit
    holds them)."""
    import tensorflow as tf

    from helix_tf.components import keras_models as km

    keras = km._k()
    keras.utils.set_random_seed(3)
    inputs = {"a": keras.Input(shape=(2,), name="a"), "b": keras.Input(shape=(1,), name="b")}
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([inputs["a"], inputs["b"]]))
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    x = {
        "a": tf.convert_to_tensor(rng.normal(size=(100, 2)).astype(np.float32)),
        "b": tf.convert_to_tensor(rng.normal(size=(100, 1)).astype(np.float32)),
    }
    y = tf.convert_to_tensor(rng.normal(size=(100, 1)).astype(np.float32))
    return model, x, y


@pytest.fixture
def eager_ops() -> Iterator[list[str]]:
    """The op types run eagerly (outside any graph) while the test body runs."""
    from tensorflow.python.framework import op_callbacks

    seen: list[str] = []

    def callback(
        op_type: Any, inputs: Any, attrs: Any, outputs: Any, op_name: Any = None, graph: Any = None
    ) -> None:
        if graph is None:
            seen.append(str(op_type))

    op_callbacks.add_op_callback(callback)
    try:
        yield seen
    finally:
        op_callbacks.remove_op_callback(callback)


def test_an_epoch_is_one_graph_call_per_batch(eager_ops: list[str]) -> None:
    model, x, y = _model()
    epoch = _light_fit._epoch_function(model, x, y)
    epoch(x, y, np.arange(100), 1)  # the first call: nothing traced on the way
    eager_ops.clear()
    epoch(x, y, np.random.default_rng(1).permutation(100), 32)  # 4 batches
    # Each batch's rows are gathered in the graph: no eager gather (or any other op)
    # between the step's calls.
    assert len(eager_ops) == 4, eager_ops


def _old_epoch_function(model: Any, x: Any, y: Any) -> Any:
    """The loop before the step gathered its own batch: eager gathers, then the step."""
    import tensorflow as tf

    def spec(v: Any) -> Any:
        return tf.TensorSpec([None, *v.shape[1:]], v.dtype)

    step = tf.function(
        lambda xb, yb: model.train_step((xb, yb)),
        input_signature=({k: spec(v) for k, v in x.items()}, spec(y)),
        autograph=False,
    )

    def epoch(x: Any, y: Any, order: np.ndarray, batch_size: int) -> None:
        for start in range(0, len(order), batch_size):
            rows = tf.constant(order[start : start + batch_size])
            step({k: tf.gather(v, rows) for k, v in x.items()}, tf.gather(y, rows))

    return epoch


# Adam and dropout: the same bits as the loop before. (FTRL's weights differ in their
# last bits, the graph around the in-graph gather rewritten: the approximate learner's
# fingerprint carries "loop_version", so a model the loop before stored is not reused.)
@pytest.mark.parametrize("name", ["linear-binary-l2", "dnn-dropout-regression"])
def test_gathering_in_the_graph_trains_the_same_bits(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")  # a fresh trainer each time
    weights, stats, scores = t._train(name, light=True)
    monkeypatch.setattr(_light_fit, "_epoch_function", _old_epoch_function)
    old_weights, old_stats, old_scores = t._train(name, light=True)
    for new, old in zip(weights, old_weights, strict=True):
        np.testing.assert_array_equal(new, old)
    np.testing.assert_array_equal(scores, old_scores)
    assert stats["losses"] == old_stats["losses"]


def _bags_of_width(width: int) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], np.ndarray]:
    """The trainers' test data with its bag padded to ``width`` (a sample's longest bag)."""
    features, x, y = t._data("binary")
    rng = np.random.default_rng(width)
    x = {
        **x,
        "tags__idx": rng.integers(0, 5, size=(t.ROWS, width)).astype(np.int32),
        "tags__val": rng.random(size=(t.ROWS, width)).astype(np.float32),
    }
    return features, x, y


def _light_weights(
    features: list[dict[str, Any]], x: dict[str, np.ndarray], y: np.ndarray
) -> list[np.ndarray]:
    from helix_tf.components import keras_models as km

    learner = t.CASES["linear-binary-l2"][0]
    model, _ = km.train_model(learner, features, x, y, light=True)
    return [np.asarray(w) for w in model.get_weights()]


def test_a_kept_trainer_trains_a_sample_whose_bags_are_longer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The step traced over one sample takes another whose longest bag differs (before:
    its signature held the first sample's width, and the kept trainer's step failed)."""
    from helix_tf.components.trainers import TRAINERS

    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")
    TRAINERS.clear()
    _light_weights(*_bags_of_width(3))
    reuses = TRAINERS.stats()["reuses"]
    wider = _light_weights(*_bags_of_width(5))
    assert TRAINERS.stats()["reuses"] == reuses + 1
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")  # a fresh trainer: the same bits
    for kept, fresh in zip(wider, _light_weights(*_bags_of_width(5)), strict=True):
        np.testing.assert_array_equal(kept, fresh)


@pytest.fixture
def kernel_cache_clears(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each time TensorFlow's kernel cache is cleared (``tf.random.set_seed`` does it, once
    the eager context exists: made here, whatever ran before)."""
    from tensorflow.python import pywrap_tfe
    from tensorflow.python.eager import context

    context.ensure_initialized()

    clears: list[int] = []
    clear = pywrap_tfe.TFE_ContextClearCaches

    def counted(handle: Any) -> None:
        clears.append(1)
        clear(handle)

    monkeypatch.setattr(pywrap_tfe, "TFE_ContextClearCaches", counted)
    return clears


def test_a_light_training_on_a_kept_trainer_keeps_tensorflows_kernels(
    monkeypatch: pytest.MonkeyPatch, kernel_cache_clears: list[int]
) -> None:
    """Seeding for a reused trainer's light loop leaves the kernel cache alone: its
    traced step stays instantiated (a clear made the next call instantiate it again,
    ~0.15 s a training). A new trainer and an exact training seed as before."""
    from helix_tf.components.trainers import TRAINERS

    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")
    TRAINERS.clear()
    t._train("linear-binary-l2", light=True)  # a new trainer: cleared before its build
    assert kernel_cache_clears
    kernel_cache_clears.clear()
    reuses = TRAINERS.stats()["reuses"]
    t._train("linear-binary-l2", light=True, l2=3e-3, learning_rate=0.3)
    assert TRAINERS.stats()["reuses"] == reuses + 1
    assert kernel_cache_clears == []
    t._train("linear-binary-l2", light=False)  # Keras' fit: seeded as it always was
    assert kernel_cache_clears


def test_seeding_that_keeps_the_kernels_seeds_as_keras_does() -> None:
    """``seed_generators(keep_kernels=True)`` leaves every generator as Keras'
    ``set_random_seed`` does (Python's, numpy's, TensorFlow's op seeds, Keras' global)."""
    import random

    from keras.src.backend.common import global_state
    from tensorflow.python.eager import context

    from helix_tf.components import keras_models as km, trainers

    keras = km._k()

    def state() -> tuple[Any, ...]:
        ctx = context.context()
        return (
            random.getstate(),
            repr(np.random.get_state()),
            ctx._seed,
            ctx._rng.getstate(),
            global_state.get_global_attribute("global_random_seed"),
            global_state.get_global_attribute("global_seed_generator"),
        )

    for seed in (0, 7):
        random.random(), np.random.random(), keras.random.uniform(())  # move them all
        keras.utils.set_random_seed(seed)
        expected = state()
        random.random(), np.random.random(), keras.random.uniform(())
        trainers.seed_generators(seed, keep_kernels=True)
        assert state() == expected


def test_a_prepared_trainer_is_reused_with_its_step_traced_and_a_fresh_builds_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``keras_models.prepare`` (the server's idle trainer, from a run's hint) builds the
    trainer a training of the same graph reuses, its light step traced: that training
    traces nothing and gives a fresh trainer's bits; an exact one reuses it too."""
    from helix_tf.components import keras_models as km, trainers
    from helix_tf.components.trainers import TRAINERS

    learner, _, _ = t.CASES["dnn-dropout-regression"]
    features, x, y = t._data("regression")
    head = km.Head(task="regression", classes=3)  # as t._train makes it
    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")
    TRAINERS.clear()
    hinted = km._training(learner, features, x, y, head, learner.epochs, "float32", True)
    assert km.prepare(km._hint_of(hinted))
    assert not km.prepare(km._hint_of(hinted))  # kept already: nothing more
    builds = TRAINERS.stats()["builds"]
    traced: list[int] = []
    epoch_function = _light_fit._epoch_function
    monkeypatch.setattr(
        _light_fit, "_epoch_function", lambda *a: traced.append(1) or epoch_function(*a)
    )
    weights, stats, _ = t._train("dnn-dropout-regression", light=True, learning_rate=0.02)
    assert TRAINERS.stats()["builds"] == builds and traced == []
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")
    fresh, fresh_stats, _ = t._train("dnn-dropout-regression", light=True, learning_rate=0.02)
    assert traced == [1]
    for a, b in zip(weights, fresh, strict=True):
        np.testing.assert_array_equal(a, b)
    assert stats["losses"] == fresh_stats["losses"]
    # An exact training (Keras' fit) reuses one as well.
    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")
    TRAINERS.clear()
    assert km.prepare(km._hint_of(hinted))
    exact, _, _ = t._train("dnn-dropout-regression", learning_rate=0.02)
    assert TRAINERS.stats()["builds"] == builds + 2  # the fresh one above, this preparation
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")
    for a, b in zip(exact, t._train("dnn-dropout-regression", learning_rate=0.02)[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert trainers.TRAINERS.capacity == 0 and not km.prepare(km._hint_of(hinted))


def test_the_idle_warm_up_after_a_preparation_keeps_its_step_instantiated(
    kernel_cache_clears: list[int],
) -> None:
    """The server's trainer warms up after preparing a hinted graph: seeding for its tiny
    training must not clear the kernel cache that holds the prepared light step."""
    from helix_tf.components import keras_models as km

    km.warm_up()
    assert kernel_cache_clears == []


@pytest.mark.parametrize("case", ["linear-ftrl-multiclass", "dnn-dropout-regression"])
def test_the_idle_preparation_after_an_exact_training_gives_a_fresh_builds_light_bits(
    monkeypatch: pytest.MonkeyPatch, kernel_cache_clears: list[int], case: str
) -> None:
    """The server's trainer prepares the graph it just trained once that run has ended
    (``keras_models.prepare``): a trainer Keras' ``fit`` left gets its light step traced
    and run; after an exact training has cleared TensorFlow's kernel cache, the step is
    run again (instantiated). The next light training traces nothing, clears nothing, and
    gives the bits of a training on a fresh trainer."""
    from helix_tf.components import keras_models as km
    from helix_tf.components.trainers import TRAINERS

    learner, task, _ = t.CASES[case]
    features, x, y = t._data(task)
    head = km.Head(task=task, classes=3)  # as t._train makes it
    y_learned = km._target(head, y, None)[0]
    exact = km._training(learner, features, x, y_learned, head, learner.epochs, "float32")
    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")
    TRAINERS.clear()
    traced: list[int] = []
    epoch_function = _light_fit._epoch_function
    monkeypatch.setattr(
        _light_fit, "_epoch_function", lambda *a: traced.append(1) or epoch_function(*a)
    )
    t._train(case)  # Keras' fit: the trainer is kept without a light step
    builds = TRAINERS.stats()["builds"]
    assert km.prepare(km._hint_of(exact)) and traced == [1]
    assert not km.prepare(km._hint_of(exact))  # ready: nothing more
    t._train(case, learning_rate=0.03)  # exact again: the kernel cache is cleared
    assert km.prepare(km._hint_of(exact)) and traced == [1]  # run again, not traced
    kernel_cache_clears.clear()
    reuses = TRAINERS.stats()["reuses"]
    weights, stats, scores = t._train(case, light=True, learning_rate=0.02)
    assert traced == [1] and kernel_cache_clears == []
    assert TRAINERS.stats()["builds"] == builds
    assert TRAINERS.stats()["reuses"] == reuses + 1  # a preparation is not counted
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")
    fresh, fresh_stats, fresh_scores = t._train(case, light=True, learning_rate=0.02)
    assert traced == [1, 1]
    for a, b in zip(weights, fresh, strict=True):
        np.testing.assert_array_equal(a, b)
    assert stats["losses"] == fresh_stats["losses"]
    np.testing.assert_array_equal(scores, fresh_scores)
