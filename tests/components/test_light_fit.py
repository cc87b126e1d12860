"""The approximate runs' light training loop (helix_tf.components._light_fit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

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
def keras_light_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linear models step as Keras' own step does (the flat update) rather than over one
    table (helix_tf.components._linear_step, tested against Keras' step in its own file):
    the tests here hold Keras' step to the bit."""
    from helix_tf.components import _linear_step

    monkeypatch.setattr(_linear_step, "layout_of", lambda *a, **k: None)


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


def test_an_epoch_is_one_graph_call_that_takes_every_batchs_step(eager_ops: list[str]) -> None:
    model, x, y = _model()
    epoch = _light_fit._epoch_function(model, x, y)
    epoch(x, y, np.arange(100), 1)  # the first call: nothing traced on the way
    steps = int(model.optimizer.iterations)
    eager_ops.clear()
    epoch(x, y, np.random.default_rng(1).permutation(100), 32)  # 4 batches
    # The epoch's loop gathers each batch's rows and steps in the graph: one call, no
    # eager op between steps.
    assert len(eager_ops) == 1 and eager_ops[0].startswith("__inference"), eager_ops
    assert int(model.optimizer.iterations) == steps + 4


def _per_batch_epoch_function(model: Any, x: Any, y: Any, linear: Any = None) -> Any:
    """The loop before (loop_version 3): one traced step a batch, called from Python."""
    import tensorflow as tf

    def spec(v: Any) -> Any:
        return tf.TensorSpec([None, *v.shape[1:]], v.dtype)

    def batch_step(xs: Any, ys: Any, rows: Any) -> Any:
        return model.train_step(
            ({k: tf.gather(v, rows) for k, v in xs.items()}, tf.gather(ys, rows))
        )

    step = tf.function(
        batch_step,
        input_signature=(
            {k: spec(v) for k, v in x.items()},
            spec(y),
            spec(tf.zeros([0], tf.int64)),
        ),
        autograph=False,
    )

    def epoch(x: Any, y: Any, order: np.ndarray, batch_size: int) -> float:
        model.reset_metrics()
        order = np.asarray(order, dtype=np.int64)
        for start in range(0, len(order), batch_size):
            step(x, y, tf.constant(order[start : start + batch_size]))
        return float(model.get_metrics_result()["loss"])

    return epoch


# The epoch's loop takes its steps one after the other: the bits of one graph call a
# batch, every time (a loop whose steps overlapped gave other bits from run to run).
@pytest.mark.parametrize(
    "name", ["linear-ftrl-multiclass", "linear-binary-l2", "dnn-dropout-regression"]
)
@pytest.mark.usefixtures("keras_light_step")
def test_the_epochs_loop_takes_its_steps_in_order(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")  # a fresh trainer each time
    runs = [t._train(name, light=True) for _ in range(3)]
    monkeypatch.setattr(_light_fit, "_epoch_function", _per_batch_epoch_function)
    per_batch, per_batch_stats, per_batch_scores = t._train(name, light=True)
    for weights, stats, scores in runs:
        for new, old in zip(weights, per_batch, strict=True):
            np.testing.assert_array_equal(new, old)
        np.testing.assert_array_equal(scores, per_batch_scores)
        assert stats["losses"] == per_batch_stats["losses"]


def _old_epoch_function(model: Any, x: Any, y: Any, linear: Any = None) -> Any:
    """The loop before the step gathered its own batch: eager gathers, then the step."""
    import tensorflow as tf

    def spec(v: Any) -> Any:
        return tf.TensorSpec([None, *v.shape[1:]], v.dtype)

    step = tf.function(
        lambda xb, yb: model.train_step((xb, yb)),
        input_signature=({k: spec(v) for k, v in x.items()}, spec(y)),
        autograph=False,
    )

    def epoch(x: Any, y: Any, order: np.ndarray, batch_size: int) -> float:
        model.reset_metrics()
        for start in range(0, len(order), batch_size):
            rows = tf.constant(order[start : start + batch_size])
            step({k: tf.gather(v, rows) for k, v in x.items()}, tf.gather(y, rows))
        return float(model.get_metrics_result()["loss"])

    return epoch


# Adam and dropout: the same bits as the loop before. (FTRL's weights differ in their
# last bits, the graph around the in-graph gather rewritten: the approximate learner's
# fingerprint carries "loop_version", so a model the loop before stored is not reused.)
@pytest.mark.parametrize("name", ["linear-binary-l2", "dnn-dropout-regression"])
@pytest.mark.usefixtures("keras_light_step")
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


# One update over all the weights (_FlatUpdate): Keras' own update of each variable, to
# the bit, for every optimizer a learner may name, over dense weights, categorical and bag
# embeddings (sparse gradients), several outputs and bfloat16 layers.
@pytest.mark.parametrize(
    ("name", "optimizer"),
    [
        *(("widedeep-binary", o) for o in ("adam", "sgd", "ftrl", "adagrad", "rmsprop")),
        *(("linear-binary-l2", o.lower()) for o in _light_fit.ELEMENTWISE),
        ("linear-eager-binary", "ftrl"),
        *(("dnn-bf16-multiclass", o.lower()) for o in _light_fit.ELEMENTWISE),
    ],
)
@pytest.mark.usefixtures("keras_light_step")
def test_one_update_over_all_the_weights_trains_kerass_bits(
    name: str, optimizer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")  # a fresh trainer each time
    change: dict[str, Any] = {"optimizer": optimizer, "learning_rate": 0.05}
    weights, stats, scores = t._train(name, light=True, **change)
    monkeypatch.setattr(_light_fit, "_epoch_function", _per_batch_epoch_function)
    keras_weights, keras_stats, keras_scores = t._train(name, light=True, **change)
    for new, old in zip(weights, keras_weights, strict=True):
        np.testing.assert_array_equal(new, old)
    np.testing.assert_array_equal(scores, keras_scores)
    assert stats["losses"] == keras_stats["losses"]


def test_the_loop_sums_the_epochs_loss_itself_as_kerass_loss_tracker_does() -> None:
    """The traced loop leaves Keras' loss tracker alone (no metric variable assigned a
    step) and reports each epoch the tracker's mean to the bit, with the same weights."""
    model, x, y = _model()
    losses, _ = _light_fit.light_fit(model, x, y, batch_size=32, epochs=3, seed=0)
    assert [float(v) for v in model._loss_tracker.variables] == [0.0, 0.0]
    keras_model, x, y = _model()
    epoch = _per_batch_epoch_function(keras_model, x, y)
    rng = np.random.default_rng(0)
    assert losses == [epoch(x, y, rng.permutation(100), 32) for _ in range(3)]
    for a, b in zip(model.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def _body_nodes(step: Any) -> int:
    """The graph nodes of one step of a traced light loop."""
    graph = [c.cell_contents for c in step.__closure__ or () if hasattr(c.cell_contents, "graph")]
    body = [f for f in graph[0].graph.as_graph_def().library.function if "body" in f.signature.name]
    return len(body[0].node_def)


def test_the_light_loop_updates_the_weights_in_one_update_not_one_a_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The traced step holds one optimizer update, fewer nodes than Keras' update of each
    variable; the model's optimizer counts the steps, its slots stay as built; a second
    training on the same step starts again from the model's weights."""
    from helix_tf.components import keras_models as km

    keras = km._k()

    def adam_model() -> tuple[Any, dict[str, Any], Any]:
        _, x, y = _model()
        keras.utils.set_random_seed(3)
        inputs = {name: keras.Input(shape=(t.shape[1],), name=name) for name, t in x.items()}
        # four variables: a kernel and a bias each
        out = keras.layers.Add()([keras.layers.Dense(1)(i) for i in inputs.values()])
        model = keras.Model(inputs, out)
        model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
        model.optimizer.build(model.trainable_variables)
        return model, x, y

    model, x, y = adam_model()
    assert len(model.trainable_variables) == _light_fit.FLAT_VARIABLES
    built = [np.array(v) for v in model.optimizer.variables[2:]]  # the slots
    start = [np.array(w) for w in model.get_weights()]
    losses, step = _light_fit.light_fit(model, x, y, batch_size=32, epochs=2, seed=0)
    assert int(model.optimizer.iterations) == 8
    for slot, fresh in zip(model.optimizer.variables[2:], built, strict=True):
        np.testing.assert_array_equal(np.array(slot), fresh)
    first = [np.array(w) for w in model.get_weights()]
    assert any((a != b).any() for a, b in zip(first, start, strict=True))
    model.set_weights(start)  # a kept trainer's reset
    again, _ = _light_fit.light_fit(model, x, y, batch_size=32, epochs=2, seed=0, step=step)
    assert again == losses
    for a, b in zip(model.get_weights(), first, strict=True):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(_light_fit._FlatUpdate, "of", classmethod(lambda cls, model: None))
    keras_model, x, y = adam_model()
    _, keras_step = _light_fit.light_fit(keras_model, x, y, batch_size=32, epochs=2, seed=0)
    assert _body_nodes(step) < _body_nodes(keras_step)
    for a, b in zip(keras_model.get_weights(), first, strict=True):
        np.testing.assert_array_equal(a, b)


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


# ------------------------------------------------------------------------------ plateau

TOLERANCES = st.floats(min_value=1e-6, max_value=0.05)
WINDOWS = st.integers(min_value=1, max_value=12)


@settings(max_examples=80, deadline=None)
@given(losses=st.lists(st.floats(0.01, 10.0), max_size=60), tolerance=TOLERANCES, window=WINDOWS)
def test_no_plateau_before_two_windows_of_epochs(
    losses: list[float], tolerance: float, window: int
) -> None:
    if len(losses) < 2 * window:
        assert not _light_fit.plateaued(losses, tolerance, window)


@settings(max_examples=80, deadline=None)
@given(
    start=st.floats(0.01, 10.0),
    epochs=st.integers(1, 80),
    tolerance=TOLERANCES,
    window=WINDOWS,
    faster=st.floats(2.0, 50.0),
)
def test_a_loss_still_falling_faster_than_the_tolerance_never_plateaus(
    start: float, epochs: int, tolerance: float, window: int, faster: float
) -> None:
    """A loss that falls by more than ``tolerance`` of itself every epoch keeps training,
    whatever the window (FTRL's on census ×100 was still falling ~1e-3 an epoch at 50
    sample epochs)."""
    drop = min(faster * tolerance, 0.5)
    losses = [start * (1 - drop) ** k for k in range(epochs)]
    assert not _light_fit.plateaued(losses, tolerance, window)


@settings(max_examples=80, deadline=None)
@given(
    level=st.floats(0.01, 10.0),
    noise=st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=40),
    tolerance=TOLERANCES,
    window=WINDOWS,
)
def test_a_loss_that_only_wobbles_within_the_tolerance_plateaus(
    level: float, noise: list[float], tolerance: float, window: int
) -> None:
    """A loss that moves around a level by a quarter of the tolerance (Adam's on census
    ×100 after ~30 sample epochs) has stopped falling once two windows are in."""
    wobble = level * tolerance / 4
    losses = [level + wobble * n for n in (noise * (2 * window))[: 2 * window]]
    assert _light_fit.plateaued(losses, tolerance, window)
    assert not _light_fit.plateaued(losses[:-1], tolerance, window)


@settings(max_examples=60, deadline=None)
@given(
    losses=st.lists(st.floats(0.01, 10.0), min_size=2, max_size=40),
    tolerance=TOLERANCES,
    window=WINDOWS,
    power=st.integers(-4, 4),
)
def test_the_plateau_is_a_share_of_the_loss_whatever_its_scale(
    losses: list[float], tolerance: float, window: int, power: int
) -> None:
    scaled = [v * 2.0**power for v in losses]  # exact in floating point
    assert _light_fit.plateaued(scaled, tolerance, window) == _light_fit.plateaued(
        losses, tolerance, window
    )


def _stop(losses: list[float], tolerance: float, window: int) -> int:
    """The epoch training over ``losses`` stops at (their number: never sooner)."""
    return next(
        (
            k
            for k in range(1, len(losses) + 1)
            if _light_fit.plateaued(losses[:k], tolerance, window)
        ),
        len(losses),
    )


RULE = {"errors": 1.0, "share": 0.1, "epochs": 10}


@settings(max_examples=80, deadline=None)
@given(
    losses=st.lists(st.floats(0.01, 10.0), min_size=2, max_size=60),
    rows=st.integers(1, 10**7),
    more=st.integers(1, 10**7),
    epochs=st.integers(1, 500),
)
def test_a_larger_sample_never_stops_earlier_on_the_same_losses(
    losses: list[float], rows: int, more: int, epochs: int
) -> None:
    """The tolerance is the sampling error of a mean over the sample's rows: more rows
    resolve smaller improvements, so the same loss curve trains at least as long."""
    small, window = _light_fit.plateau_rule(RULE, epochs, rows)
    large, same = _light_fit.plateau_rule(RULE, epochs, rows + more)
    assert same == window and large < small
    assert _stop(losses, large, window) >= _stop(losses, small, window)


@settings(max_examples=80, deadline=None)
@given(epochs=st.integers(1, 5000), more=st.integers(0, 5000), rows=st.integers(1, 10**7))
def test_the_window_is_a_share_of_the_planned_epochs_from_two_to_its_longest(
    epochs: int, more: int, rows: int
) -> None:
    """A short training is not held to two windows of the longest; a longer one never
    compares shorter windows."""
    window = _light_fit.plateau_rule(RULE, epochs, rows)[1]
    assert 2 <= window <= RULE["epochs"]
    assert window <= max(2, epochs // 10)
    assert _light_fit.plateau_rule(RULE, epochs + more, rows)[1] >= window


def test_a_loss_that_is_not_finite_never_plateaus() -> None:
    assert not _light_fit.plateaued([float("nan")] * 4, 1e-4, 2)
    assert not _light_fit.plateaued([float("inf")] * 4, 1e-4, 2)


def _trained(epochs: int, plateau: dict[str, float] | None) -> tuple[list[float], list[Any]]:
    model, x, y = _model()
    losses, _ = _light_fit.light_fit(
        model, x, y, batch_size=32, epochs=epochs, seed=5, plateau=plateau
    )
    return losses, [np.asarray(w) for w in model.get_weights()]


def test_training_stops_at_its_plateau_with_the_weights_of_that_many_epochs() -> None:
    """A loss that has stopped falling ends the training before its epochs; the model is
    the one training exactly that many epochs gives (the same sample stops at the same
    epoch in any process: the decision reads the losses only)."""
    rule = {"errors": 0.1, "share": 0.05, "epochs": 3}  # 100 rows: tolerance 0.01
    assert _light_fit.plateau_rule(rule, 60, 100) == (0.01, 3)
    losses, weights = _trained(60, rule)
    assert 6 <= len(losses) < 60
    assert _light_fit.plateaued(losses, 0.01, 3)
    assert not any(_light_fit.plateaued(losses[:k], 0.01, 3) for k in range(len(losses)))
    again, fixed = _trained(len(losses), None)
    assert again == losses
    for a, b in zip(weights, fixed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(_trained(60, None)[0]) == 60  # without a plateau: every epoch
