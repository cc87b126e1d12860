"""Build a Keras model for a learner over the examples' features, and its head.

A linear model is a sum over features of per-index weights (times the value for
numerics and bags) plus a bias; a DNN embeds indices and feeds the concatenation
to dense layers; wide & deep sums both logits. :class:`Head` says what the label
asks of the model (outputs and loss). Split from
:mod:`helix_tf.components.keras_models`: this file changes when an architecture does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from helix_tf.components import _keras_layers as layers, penalties
from helix_tf.components.learners import DNN, Learner, Linear, WideDeep
from helix_tf.types import CATEGORICAL, NUMERIC

__all__ = ["Head", "build_model", "optimizer"]


def _regularizer(learner: Learner, strengths: penalties.Strengths) -> Any:
    if learner.optimizer == "ftrl":  # FTRL applies them in its update
        return None
    return penalties.regularizer(learner, strengths)


def _inputs(features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    keras = layers.keras()
    inputs: dict[str, Any] = {}
    for spec in features:
        name, kind = spec["name"], spec["kind"]
        if kind == NUMERIC:
            inputs[name] = keras.Input((1,), name=name, dtype="float32")
        elif kind == CATEGORICAL:
            inputs[name] = keras.Input((1,), name=name, dtype="int32")
        else:
            inputs[f"{name}__idx"] = keras.Input((None,), name=f"{name}__idx", dtype="int32")
            inputs[f"{name}__val"] = keras.Input((None,), name=f"{name}__val", dtype="float32")
    return inputs


def _linear_logits(
    features: Sequence[Mapping[str, Any]],
    inputs: Mapping[str, Any],
    reg: Any,
    prefix: str,
    units: int = 1,
) -> list[Any]:
    keras = layers.keras()
    # One weight per index and output, starting at zero (so L1/FTRL zeros are meaningful).
    init = "zeros" if units != 1 else None
    parts = []
    for spec in features:
        name, kind = spec["name"], spec["kind"]
        if kind == NUMERIC:
            layer = keras.layers.Dense(
                units,
                use_bias=False,
                kernel_initializer="zeros",
                kernel_regularizer=reg,
                name=f"{prefix}{name}",
            )
            parts.append(layer(inputs[name]))
        elif kind == CATEGORICAL:
            layer = layers.IndexedWeights(spec["size"], units, reg, init, name=f"{prefix}{name}")
            parts.append(layer(inputs[name]))
        else:
            layer = layers.IndexedWeights(spec["size"], units, reg, init, name=f"{prefix}{name}")
            parts.append(layer([inputs[f"{name}__idx"], inputs[f"{name}__val"]]))
    return parts


def _deep_logits(
    features: Sequence[Mapping[str, Any]],
    inputs: Mapping[str, Any],
    learner: DNN,
    strengths: penalties.Strengths,
    units: int = 1,
) -> Any:
    keras = layers.keras()
    reg = penalties.regularizer(learner, strengths, form="l2")
    parts = []
    for spec in features:
        name, kind = spec["name"], spec["kind"]
        if kind == NUMERIC:
            parts.append(inputs[name])
        elif kind == CATEGORICAL:
            parts.append(
                layers.IndexedWeights(spec["size"], learner.embedding_dim, name=f"emb_{name}")(
                    inputs[name]
                )
            )
        else:
            layer = layers.IndexedWeights(spec["size"], learner.embedding_dim, name=f"emb_{name}")
            parts.append(layer([inputs[f"{name}__idx"], inputs[f"{name}__val"]]))
    x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="deep_inputs")(parts)
    for i, width in enumerate(learner.hidden):
        x = keras.layers.Dense(
            width, activation=learner.activation, kernel_regularizer=reg, name=f"hidden{i}"
        )(x)
        if learner.dropout:
            x = keras.layers.Dropout(learner.dropout, seed=learner.seed + i)(x)
    return keras.layers.Dense(units, name="deep_logit")(x)


def build_model(
    learner: Learner,
    features: Sequence[Mapping[str, Any]],
    units: int = 1,
    strengths: penalties.Strengths | None = None,
) -> Any:
    """The Keras model for ``learner`` over ``features``: ``units`` logits (or values).

    One output for a binary label (a logit) and for regression (a value), one
    logit per class for a multiclass label. Its L1/L2 penalties read ``strengths``
    (default: the learner's, in variables of its own).
    """
    keras = layers.keras()
    strengths = strengths or penalties.Strengths.of(learner)
    inputs = _inputs(features)
    if isinstance(learner, WideDeep):
        names = [f["name"] for f in features]
        wide = [f for f in features if f["name"] in learner.features_for("wide", names)]
        deep = [f for f in features if f["name"] in learner.features_for("deep", names)]
        parts = _linear_logits(wide, inputs, _regularizer(learner, strengths), "w_", units)
        parts.append(_deep_logits(deep, inputs, learner, strengths, units))
        logit = layers.SumLogits(units, name="logit")(parts)
    elif isinstance(learner, DNN):
        logit = _deep_logits(features, inputs, learner, strengths, units)
    elif isinstance(learner, Linear):
        logit = layers.SumLogits(units, name="logit")(
            _linear_logits(features, inputs, _regularizer(learner, strengths), "w_", units)
        )
    else:
        raise TypeError(f"unknown learner {type(learner).__name__}")
    return keras.Model(inputs=inputs, outputs=logit, name="helix_model")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """What the label asks of the model: the task, its outputs and its loss.

    ``task`` is "binary", "multiclass" or "regression"; ``classes`` the number of
    classes (multiclass); ``loss`` and ``huber_delta`` the regression loss.
    """

    task: str = "binary"
    classes: int = 2
    loss: str = "squared"
    huber_delta: float = 1.0

    @property
    def units(self) -> int:
        return self.classes if self.task == "multiclass" else 1

    def keras_loss(self, reduction: str = "sum_over_batch_size") -> Any:
        """The Keras loss; ``reduction="none"`` gives one loss per row (custom loops)."""
        keras = layers.keras()
        if self.task == "binary":
            return keras.losses.BinaryCrossentropy(from_logits=True, reduction=reduction)
        if self.task == "multiclass":
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)
        if self.loss == "absolute":
            return keras.losses.MeanAbsoluteError(reduction=reduction)
        if self.loss == "huber":
            return keras.losses.Huber(delta=float(self.huber_delta), reduction=reduction)
        return keras.losses.MeanSquaredError(reduction=reduction)


def optimizer(learner: Learner, strengths: penalties.Strengths) -> Any:
    keras = layers.keras()
    lr = float(learner.learning_rate)
    if learner.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if learner.optimizer == "sgd":
        return keras.optimizers.SGD(lr)
    if learner.optimizer == "adagrad":
        return keras.optimizers.Adagrad(lr)
    if learner.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(lr)
    return penalties.ftrl(lr, strengths)
