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
