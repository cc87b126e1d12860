"""The learners' executor: train, save, load and apply Keras models.

This module imports TensorFlow/Keras; only the engine imports it, and only when
a train or predict node has to compute. Models read the examples' feature
columns as numpy arrays (passing numpy to ``fit`` was ~10x faster than a
``tf.data`` pipeline over the same arrays here).

Its parts, one reason to change each: the inputs from examples tables
(:mod:`._model_inputs`: one array per numeric or categorical feature, two padded
ones per bag), the architectures and heads (:mod:`._model_build`), the custom
layers and Keras' import (:mod:`._keras_layers`); this module trains (here, or in
the server's trainer, :mod:`helix_tf.components.trainers`) and scores.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from helix_tf.components import _keras_layers, penalties
from helix_tf.components._keras_layers import keras as _k
from helix_tf.components._model_build import Head, build_model, optimizer
from helix_tf.components._model_inputs import (
    arrays_from_table,
    feature_columns,
    labels_from_table,
    streamed_examples,
)
from helix_tf.components.learners import DNN, Learner, WideDeep

__all__ = [
    "Head",
    "arrays_from_table",
    "build_model",
    "feature_columns",
    "feature_weights",
    "labels_from_table",
    "load_model",
    "predict_scores",
    "save_model",
    "streamed_examples",
    "train_model",
    "train_weights",
    "zero_weight_features",
]

log = logging.getLogger(__name__)


#: Training runs eagerly (no tf.function tracing) when it has at most this many steps.
EAGER_MAX_STEPS = int(os.environ.get("HELIX_EAGER_MAX_STEPS", "20"))


def train_model(
    learner: Learner,
    features: Sequence[Mapping[str, Any]],
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    *,
    precision: str = "fp32",
    epochs: int | None = None,
    on_epoch: Callable[[int, int, float, float], None] | None = None,
    head: Head | None = None,
    batches: Any = None,
) -> tuple[Any, dict[str, float]]:
    """Train deterministically (seeded); returns the model and final training stats.

    ``batches`` (a :class:`helix_tf.components.distributed.Batches`, learners with a
    ``strategy`` only) replaces ``x`` and ``y``: global batches streamed from disk.

    ``on_epoch(epoch, epochs, loss, seconds)`` is called after every epoch (progress).
    ``y`` holds 0/1 labels (binary), class indices (multiclass) or the target values
    (regression, already transformed); a regression model is trained on the target
    standardised over these rows and returned with a :class:`Rescale` output, so it
    predicts on the target's own scale.
    """
    head = head or Head()
    keras = _k()
    import tensorflow as tf

    keras.utils.set_random_seed(int(learner.seed))
    tf.config.experimental.enable_op_determinism()
    policy = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}.get(precision, "float32")
    keras.mixed_precision.set_global_policy(policy)
    try:
        mean = std = None
        if head.task == "regression" and batches is not None:
            mean, std = batches.scale  # streamed: standardised over all rows as it reads
        elif head.task == "regression":
            mean = float(np.mean(y)) if len(y) else 0.0
            std = float(np.std(y)) if len(y) else 1.0
            std = std if std > 0 else 1.0
            y = ((np.asarray(y, dtype=np.float64) - mean) / std).astype(np.float32)
        elif head.task == "multiclass":
            y = np.asarray(y, dtype=np.int32)
        n_epochs = int(epochs or learner.epochs)
        strategy = getattr(learner, "strategy", None)
        if strategy is not None:  # a tf.distribute strategy: the custom loop
            from helix_tf.components import distributed

            def build() -> tuple[Any, Any]:
                strengths = penalties.Strengths.of(learner)
                return build_model(learner, features, head.units, strengths), optimizer(
                    learner, strengths
                )

            if batches is None:
                batches = distributed.ArrayBatches(
                    x, y, batch_size=int(learner.batch_size), seed=int(learner.seed)
                )
            model, losses = distributed.train_loop(
                strategy,
                build=build,
                per_example_loss=head.keras_loss(reduction="none"),
                batches=batches,
                epochs=n_epochs,
                on_epoch=on_epoch,
            )
        else:
            if batches is not None:
                raise ValueError("streamed batches need a learner with a strategy")
            model, losses = _fit(learner, features, x, y, head, n_epochs, on_epoch)
        if mean is not None and std is not None:
            # Predictions on the target's scale: the model with its standardisation undone.
            # float32 even under a mixed-precision policy: the scale is the label's own.
            scaled = _keras_layers.Rescale(mean, std, name="rescale", dtype="float32")(
                model.outputs[0]
            )
            model = keras.Model(inputs=model.inputs, outputs=scaled, name="helix_model")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    stats: dict[str, float] = {"train_loss": float(losses[-1])}
    if mean is not None and std is not None:
        stats.update(target_mean=mean, target_std=std)
    return model, stats


def _fit(
    learner: Learner,
    features: Sequence[Mapping[str, Any]],
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    head: Head,
    n_epochs: int,
    on_epoch: Callable[[int, int, float, float], None] | None,
) -> tuple[Any, list[float]]:
    """Keras ``model.fit`` in one process (the default); the model and each epoch's loss.

    The weights come from :func:`train_weights`, here or in the process
    :func:`trainers.remote` names (a served run: the server's trainer, which keeps
    traced trainers across runs); the model returned is built here and holds them.
    """
    from helix_tf.components import trainers

    keras = _k()
    training = {
        "learner": learner,
        "features": [dict(f) for f in features],
        "x": dict(x),
        "y": y,
        "head": head,
        "n_epochs": n_epochs,
        # Tracing the step costs ~0.5 s, an eager step ~30 ms: below this, eager wins.
        "run_eagerly": -(-len(y) // int(learner.batch_size)) * n_epochs <= EAGER_MAX_STEPS,
        "policy": keras.mixed_precision.global_policy().name,
    }
    own: list[Any] = []

    def build_own() -> None:
        # A model of the caller's own, built without moving the random generators.
        with trainers.random_state_kept():
            own.append(build_model(learner, features, head.units))

    remote = trainers.remote()
    # The caller builds its model while the server's trainer trains.
    result = remote.fit(training, on_epoch, build_own) if remote is not None else None
    if result is None:
        trained, weights, losses = _fit_weights(**training, on_epoch=on_epoch)
        if trained is not None:  # no trainer kept in this process: the model is the caller's
            return trained, losses
    else:
        weights, losses = result
    if not own:
        build_own()
    own[0].set_weights(weights)
    return own[0], losses


def train_weights(
    training: Mapping[str, Any],
    on_epoch: Callable[[int, int, float, float], None] | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """What :func:`_fit` computes, for another process (the server's trainer): the
    trained weights and each epoch's loss for ``training`` (:func:`_fit_weights`'
    arguments), seeded and under its dtype policy as :func:`train_model` sets them."""
    keras = _k()
    import tensorflow as tf

    keras.utils.set_random_seed(int(training["learner"].seed))
    tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(training["policy"])
    try:
        _, weights, losses = _fit_weights(**training, on_epoch=on_epoch)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return weights, losses


def _fit_weights(
    *,
    learner: Learner,
    features: Sequence[Mapping[str, Any]],
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    head: Head,
    n_epochs: int,
    run_eagerly: bool,
    policy: str,
    on_epoch: Callable[[int, int, float, float], None] | None,
) -> tuple[Any, list[np.ndarray], list[float]]:
    """``model.fit`` on a trainer of :data:`trainers.TRAINERS`: reused when this process
    has trained the same graph before (reset to a fresh build's state: the same bits).

    The trained model (``None`` when its trainer is kept for a later training: then it
    is not the caller's), its weights and each epoch's loss.
    """
    from helix_tf.components import trainers

    keras = _k()

    def build() -> tuple[Any, penalties.Strengths]:
        strengths = penalties.Strengths.of(learner)
        model = build_model(learner, features, head.units, strengths)
        model.compile(
            optimizer=optimizer(learner, strengths),
            loss=head.keras_loss(),
            run_eagerly=run_eagerly,
        )
        # Create the optimizer's slot variables now: created inside the first traced
        # step, they make tf.function trace the step twice (~0.4 s). Same weights.
        model.optimizer.build(model.trainable_variables)
        return model, strengths

    key = trainers.graph_key(learner, features, head, policy=policy, run_eagerly=run_eagerly)
    trainer = trainers.TRAINERS.trainer(key, build, learner)
    callbacks = []
    if on_epoch is not None:
        started = time.perf_counter()
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda e, logs: on_epoch(
                    e + 1,
                    n_epochs,
                    float((logs or {}).get("loss", float("nan"))),
                    time.perf_counter() - started,
                )
            )
        )
    history = trainer.model.fit(
        dict(x),
        y,
        batch_size=int(learner.batch_size),
        epochs=n_epochs,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    weights = [np.asarray(w) for w in trainer.model.get_weights()]
    losses = list(history.history.get("loss", [float("nan")]))
    # Back to the cache only after a whole fit (one interrupted mid-fit never is).
    if trainers.TRAINERS.give_back(key, trainer):
        return None, weights, losses
    return trainer.model, weights, losses


def save_model(model: Any, path: str) -> None:
    model.save(path)


def load_model(path: str) -> Any:
    keras = _k()
    return keras.saving.load_model(path, compile=False)


def predict_scores(model: Any, x: Mapping[str, np.ndarray], task: str = "binary") -> np.ndarray:
    """Probabilities of the positive class (binary), of every class (multiclass: shape
    (n, classes)), or predicted values on the target's scale (regression)."""
    # Calling the model eagerly in large chunks avoids tracing a predict function.
    n = len(next(iter(x.values()))) if x else 0
    chunk = 65_536
    parts = [
        np.asarray(model({k: v[i : i + chunk] for k, v in x.items()}, training=False))
        for i in range(0, n, chunk)
    ]
    logits = np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
    if task == "multiclass":
        logits = logits.reshape(n, -1) if n else np.zeros((0, int(model.outputs[0].shape[-1])))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    if task == "regression":
        return logits.reshape(-1)
    return (1.0 / (1.0 + np.exp(-logits.reshape(-1)))).astype(np.float64)


def zero_weight_features(
    model: Any, learner: Learner, features: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Which features contribute nothing: every weight that reads them is exactly 0.

    Only linear parts can prove it here (a linear model, the wide part of wide &
    deep); a feature that a deep part reads is never reported. With several outputs
    (multiclass), a feature is zero when its weights are zero for every class.
    Returns ``{"zero": {feature: n_weights}, "weights": total, "zero_weights": count}``.
    """
    weights = feature_weights(model, features)
    deep: set[str] = set()
    if isinstance(learner, WideDeep):
        deep = set(learner.features_for("deep", [f["name"] for f in features]))
    elif isinstance(learner, DNN):
        deep = {f["name"] for f in features}
    zero = {}
    total = zeros = 0
    for name, w in weights.items():
        total += w.size
        nz = int((w == 0).sum())
        zeros += nz
        if nz == w.size and name not in deep:
            zero[name] = int(w.size)
    return {"zero": zero, "weights": int(total), "zero_weights": int(zeros)}


def feature_weights(model: Any, features: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The linear (wide) weights of each feature, where the model has them.

    A regression model trained on the standardised target (its ``rescale`` layer) has
    its weights scaled back, so they are in the target's units (transformed, if the
    label has a transform): what one unit of the feature adds to the prediction.
    """
    out = {}
    names = {layer.name: layer for layer in model.layers}
    rescale = names.get("rescale")
    scale = float(getattr(rescale, "std", 1.0)) if rescale is not None else 1.0
    for spec in features:
        layer = names.get(f"w_{spec['name']}")
        if layer is not None and layer.weights:
            w = np.asarray(layer.weights[0].numpy())
            out[spec["name"]] = w * scale if scale != 1.0 else w
    return out
