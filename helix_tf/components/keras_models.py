"""The learners' executor: build, train, save, load and apply Keras models.

This module imports TensorFlow/Keras; only the engine imports it, and only when
a train or predict node has to compute. Models read the examples' feature
columns as numpy arrays (passing numpy to ``fit`` was ~10x faster than a
``tf.data`` pipeline over the same arrays here).

Feature encodings, one scheme for every learner:

- numeric ``x``: a float input of shape (1,);
- categorical ``x``: an int index of shape (1,);
- bag ``x``: padded indices ``x__idx`` and weights ``x__val`` of shape (L,),
  padding has weight 0 so it contributes nothing.

A linear model is a sum over features of per-index weights (times the value for
numerics and bags) plus a bias; a DNN embeds indices and feeds the
concatenation to dense layers; wide & deep sums both logits.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from helix_tf.components import penalties
from helix_tf.components.learners import (
    DNN,
    EAGER_STEPS_SETTING,
    STREAM_BYTES_SETTING,
    Learner,
    Linear,
    WideDeep,
    training_setting,
)
from helix_tf.types import BAG, CATEGORICAL, LABEL, NUMERIC, ROW_ID

__all__ = [
    "Head",
    "arrays_from_table",
    "train_model",
    "load_model",
    "predict_scores",
    "feature_weights",
]

log = logging.getLogger(__name__)

_keras: Any = None
# Custom layers, defined when Keras is first imported (see _register_layers).
IndexedWeights: Any = None
SumLogits: Any = None
Rescale: Any = None


def _k() -> Any:
    """Import Keras on first use, with TensorFlow's start-up noise turned down."""
    global _keras
    if _keras is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras

        _keras = keras
        _register_layers(keras)
    return _keras


# ---------------------------------------------------------------------------- inputs


def feature_columns(spec: Mapping[str, Any]) -> list[str]:
    """The examples columns a feature occupies."""
    name = spec["name"]
    return [f"{name}.idx", f"{name}.val"] if spec["kind"] == BAG else [name]


def arrays_from_table(
    table: pa.Table, features: Sequence[Mapping[str, Any]], *, zeros: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """Model inputs from an examples table: one array (or two for a bag) per feature.

    Features named in ``zeros`` are not read: they get all-zero inputs (used for
    features whose learned weights are all zero, so the result is the same).
    """
    out: dict[str, np.ndarray] = {}
    n = table.num_rows
    for spec in features:
        name, kind = spec["name"], spec["kind"]
        if name in zeros:
            if kind == BAG:
                out[f"{name}__idx"] = np.zeros((n, 1), dtype=np.int32)
                out[f"{name}__val"] = np.zeros((n, 1), dtype=np.float32)
            else:
                out[name] = np.zeros((n, 1), dtype=np.float32 if kind == NUMERIC else np.int32)
        elif kind == NUMERIC:
            out[name] = table.column(name).to_numpy().astype(np.float32).reshape(-1, 1)
        elif kind == CATEGORICAL:
            out[name] = table.column(name).to_numpy().astype(np.int32).reshape(-1, 1)
        elif kind == BAG:
            out[f"{name}__idx"], out[f"{name}__val"] = _padded(table, name)
        else:
            raise ValueError(f"feature {name!r} has kind {kind!r}, which a model cannot read")
    return out


def _padded(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    idx = table.column(f"{name}.idx").combine_chunks()
    val = table.column(f"{name}.val").combine_chunks()
    offsets = np.asarray(idx.offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    n = len(lengths)
    flat_idx = np.asarray(idx.values, dtype=np.int32)[offsets[0] : offsets[-1]]
    flat_val = np.asarray(val.values, dtype=np.float32)[offsets[0] : offsets[-1]]
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(len(flat_idx)) - np.repeat(offsets[:-1] - offsets[0], lengths)
    pad_idx = np.zeros((n, width), dtype=np.int32)
    pad_val = np.zeros((n, width), dtype=np.float32)
    pad_idx[rows, cols] = flat_idx
    pad_val[rows, cols] = flat_val
    return pad_idx, pad_val


def labels_from_table(table: pa.Table) -> np.ndarray:
    return table.column(LABEL).to_numpy().astype(np.float32)


def streamed_examples(
    learner: Learner,
    folder: str,
    features: Sequence[Mapping[str, Any]],
    head: Head,
    target: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> Any:
    """Global batches streamed from the training Parquet files under ``folder``, or None.

    Only for a learner with a ``strategy`` (the custom loop reads batches; ``model.fit``
    takes arrays) and files larger than ``distributed.STREAM_BYTES`` together. A
    regression needs ``target(label values, row ids)`` (the label's transform): its
    target is standardised with a mean and std streamed over all rows first.
    """
    if getattr(learner, "strategy", None) is None:
        return None
    from helix_tf.components import distributed

    split = os.path.join(folder, "train")
    if not os.path.isdir(split):
        return None
    files = sorted(os.path.join(split, f) for f in os.listdir(split) if f.endswith(".parquet"))
    limit = training_setting(STREAM_BYTES_SETTING, distributed.STREAM_BYTES)
    if sum(os.path.getsize(f) for f in files) <= limit:
        return None
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    dtype = np.int32 if head.task == "multiclass" else np.float32
    scale = None
    if head.task == "regression":  # stream section (issue 14): the target, standardised
        if target is None:
            raise ValueError("a streamed regression needs the label's target transform")

        def regression_target(table: pa.Table) -> np.ndarray:
            return target(table.column(LABEL).to_numpy(), table.column(ROW_ID).to_numpy())

        scale = distributed.target_scale(files, regression_target, [LABEL, ROW_ID])

    def convert(table: pa.Table) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if scale is None:
            return arrays_from_table(table, features), labels_from_table(table).astype(dtype)
        y = (np.asarray(regression_target(table), np.float64) - scale[0]) / scale[1]
        return arrays_from_table(table, features), y.astype(np.float32)

    return distributed.ParquetBatches(
        files,
        convert,
        rows=rows,
        batch_size=int(learner.batch_size),
        seed=int(learner.seed),
        scale=scale,
    )


# ---------------------------------------------------------------------------- layers


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


# ---------------------------------------------------------------------------- build


def _regularizer(learner: Learner, strengths: penalties.Strengths) -> Any:
    if learner.optimizer == "ftrl":  # FTRL applies them in its update
        return None
    return penalties.regularizer(learner, strengths)


def _inputs(features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    keras = _k()
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
    keras = _k()
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
            layer = IndexedWeights(spec["size"], units, reg, init, name=f"{prefix}{name}")
            parts.append(layer(inputs[name]))
        else:
            layer = IndexedWeights(spec["size"], units, reg, init, name=f"{prefix}{name}")
            parts.append(layer([inputs[f"{name}__idx"], inputs[f"{name}__val"]]))
    return parts


def _deep_logits(
    features: Sequence[Mapping[str, Any]],
    inputs: Mapping[str, Any],
    learner: DNN,
    strengths: penalties.Strengths,
    units: int = 1,
) -> Any:
    keras = _k()
    reg = penalties.regularizer(learner, strengths, form="l2")
    parts = []
    for spec in features:
        name, kind = spec["name"], spec["kind"]
        if kind == NUMERIC:
            parts.append(inputs[name])
        elif kind == CATEGORICAL:
            parts.append(
                IndexedWeights(spec["size"], learner.embedding_dim, name=f"emb_{name}")(
                    inputs[name]
                )
            )
        else:
            layer = IndexedWeights(spec["size"], learner.embedding_dim, name=f"emb_{name}")
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
    keras = _k()
    strengths = strengths or penalties.Strengths.of(learner)
    inputs = _inputs(features)
    if isinstance(learner, WideDeep):
        names = [f["name"] for f in features]
        wide = [f for f in features if f["name"] in learner.features_for("wide", names)]
        deep = [f for f in features if f["name"] in learner.features_for("deep", names)]
        parts = _linear_logits(wide, inputs, _regularizer(learner, strengths), "w_", units)
        parts.append(_deep_logits(deep, inputs, learner, strengths, units))
        logit = SumLogits(units, name="logit")(parts)
    elif isinstance(learner, DNN):
        logit = _deep_logits(features, inputs, learner, strengths, units)
    elif isinstance(learner, Linear):
        logit = SumLogits(units, name="logit")(
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
        keras = _k()
        if self.task == "binary":
            return keras.losses.BinaryCrossentropy(from_logits=True, reduction=reduction)
        if self.task == "multiclass":
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)
        if self.loss == "absolute":
            return keras.losses.MeanAbsoluteError(reduction=reduction)
        if self.loss == "huber":
            return keras.losses.Huber(delta=float(self.huber_delta), reduction=reduction)
        return keras.losses.MeanSquaredError(reduction=reduction)


def _optimizer(learner: Learner, strengths: penalties.Strengths) -> Any:
    keras = _k()
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


#: Training runs eagerly (no tf.function tracing) when it has at most this many steps
#: (``$HELIX_EAGER_MAX_STEPS`` overrides it: :func:`learners.training_setting`).
EAGER_MAX_STEPS = 20


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
                return build_model(learner, features, head.units, strengths), _optimizer(
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
            scaled = Rescale(mean, std, name="rescale", dtype="float32")(model.outputs[0])
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
        "run_eagerly": -(-len(y) // int(learner.batch_size)) * n_epochs
        <= training_setting(EAGER_STEPS_SETTING, EAGER_MAX_STEPS),
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
            optimizer=_optimizer(learner, strengths),
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
