"""Keras for the learners' executor: imported on first use, with helix_tf's own layers.

:func:`keras` imports Keras (TensorFlow's start-up noise turned down) and registers
the custom layers every model is built from (:data:`IndexedWeights`,
:data:`SumLogits`, :data:`Rescale`) and the penalty regularizer, so a saved model
loads in any process that imported ``helix_tf``. Split from
:mod:`helix_tf.components.keras_models`: this file changes when a layer does.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from helix_tf.components import penalties

__all__ = ["keras", "dtypes", "IndexedWeights", "SumLogits", "Rescale"]

_keras: Any = None
# Custom layers, defined when Keras is first imported (see _register_layers).
IndexedWeights: Any = None
SumLogits: Any = None
Rescale: Any = None


def keras() -> Any:
    """Import Keras on first use, with TensorFlow's start-up noise turned down."""
    global _keras
    if _keras is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras as keras_module

        _keras = keras_module
        _register_layers(keras_module)
    return _keras


@contextlib.contextmanager
def dtypes(policy: str) -> Iterator[Any]:
    """Keras (yielded) under dtype ``policy`` and float32 as its default float type
    (``floatx``), whatever the process' own are; after: the policy float32, ``floatx``
    as before.

    A model is built, trained and scored under these alone: a config that set Keras'
    ``floatx`` (``keras.config.set_floatx("float64")``) failed a local run's training,
    while the server's trainer, another process, never saw it (QA 24).
    """
    keras_module = keras()
    floatx = keras_module.config.floatx()
    keras_module.config.set_floatx("float32")
    keras_module.mixed_precision.set_global_policy(policy)
    try:
        yield keras_module
    finally:
        keras_module.mixed_precision.set_global_policy("float32")
        keras_module.config.set_floatx(floatx)


def _register_layers(keras: Any) -> None:
    global IndexedWeights, SumLogits, Rescale
    IndexedWeights = _indexed_weights_layer(keras)
    penalties.register(keras)
    SumLogits = _sum_logits_layer(keras)
    Rescale = _rescale_layer(keras)


def _indexed_weights_layer(keras: Any) -> Any:
    """The registered ``IndexedWeights`` layer class."""
    ops = keras.ops

    @keras.saving.register_keras_serializable(package="helix_tf", name="IndexedWeights")
    class _IndexedWeights(keras.layers.Layer):
        """Per-index weight vectors: a lookup for categoricals, a weighted sum for bags."""

        def __init__(
            self,
            size: int,
            units: int,
            regularizer: Any = None,
            initializer: str | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self.size, self.units = int(size), int(units)
            self.regularizer = keras.regularizers.get(regularizer)
            # None: zeros for one unit (a linear weight), glorot for embeddings.
            self.initializer = initializer

        def build(self, input_shape: Any) -> None:
            self.table = self.add_weight(
                name="table",
                shape=(self.size, self.units),
                initializer=self.initializer or ("zeros" if self.units == 1 else "glorot_uniform"),
                regularizer=self.regularizer,
            )

        def call(self, inputs: Any) -> Any:
            if isinstance(inputs, list | tuple):
                idx, val = inputs
                emb = ops.take(self.table, ops.cast(idx, "int32"), axis=0)
                return ops.sum(emb * ops.expand_dims(ops.cast(val, emb.dtype), -1), axis=1)
            emb = ops.take(self.table, ops.cast(inputs, "int32"), axis=0)
            return ops.reshape(emb, (-1, self.units))

        def get_config(self) -> dict[str, Any]:
            return {
                **super().get_config(),
                "size": self.size,
                "units": self.units,
                "regularizer": keras.regularizers.serialize(self.regularizer)
                if self.regularizer
                else None,
                **({"initializer": self.initializer} if self.initializer else {}),
            }

    return _IndexedWeights


def _sum_logits_layer(keras: Any) -> Any:
    """The registered ``SumLogits`` layer class."""

    @keras.saving.register_keras_serializable(package="helix_tf", name="SumLogits")
    class _SumLogits(keras.layers.Layer):
        """Sum of per-feature logits plus a learned bias (one per output)."""

        def __init__(self, units: int = 1, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.units = int(units)

        def build(self, input_shape: Any) -> None:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

        def get_config(self) -> dict[str, Any]:
            config = super().get_config()
            if self.units != 1:
                config["units"] = self.units
            return config

        def call(self, inputs: Any) -> Any:
            parts = inputs if isinstance(inputs, list | tuple) else [inputs]
            total = parts[0]
            for p in parts[1:]:
                total = total + p
            return total + self.bias

    return _SumLogits


def _rescale_layer(keras: Any) -> Any:
    """The registered ``Rescale`` layer class."""
    ops = keras.ops

    @keras.saving.register_keras_serializable(package="helix_tf", name="Rescale")
    class _Rescale(keras.layers.Layer):
        """``x * std + mean``: a regression model trained on the standardised target."""

        def __init__(self, mean: float, std: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.mean, self.std = float(mean), float(std)

        def call(self, inputs: Any) -> Any:
            return ops.cast(inputs, "float32") * self.std + self.mean

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "mean": self.mean, "std": self.std}

    return _Rescale
