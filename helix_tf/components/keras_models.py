"""The learners' executor: train, save, load and apply Keras models.

This module imports TensorFlow/Keras; only the engine imports it, and only when
a train or predict node has to compute. Models read the examples' feature
columns as numpy arrays (passing numpy to ``fit`` was ~10x faster than a
``tf.data`` pipeline over the same arrays here).

Its parts, one reason to change each: the inputs from examples tables
(:mod:`._model_inputs`: one array per numeric or categorical feature, two padded
ones per bag), the architectures and heads (:mod:`._model_build`), the custom
layers and Keras' import (:mod:`._keras_layers`), applying a trained model: save,
load, score, explain, its weights (:mod:`._model_use`, re-exported here), an idle
trainer's preparation and warm-up (:mod:`._idle_trainer`, re-exported here); this module
trains (here, or in the server's trainer, :mod:`helix_tf.components.trainers`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from helix_tf.components import _keras_layers, _light_fit, _linear_step, penalties
from helix_tf.components._idle_trainer import (
    HINT_ROWS,
    hint_of as _hint_of,
    prepare,
    spare_model,
    warm_up,
)
from helix_tf.components._keras_layers import dtypes, keras as _k
from helix_tf.components._model_build import Head, build_model, optimizer
from helix_tf.components._model_inputs import (
    arrays_from_table,
    feature_columns,
    labels_from_table,
    streamed_examples,
)
from helix_tf.components._model_use import (
    feature_weights,
    load_model,
    model_importance,
    predict_scores,
    save_model,
    zero_weight_features,
)
from helix_tf.components._scaling import standardized, target_spread
from helix_tf.components.learners import (
    EAGER_STEPS_SETTING,
    Learner,
    training_setting,
)

__all__ = [
    "HINT_ROWS",
    "Head",
    "arrays_from_table",
    "build_model",
    "feature_columns",
    "feature_weights",
    "labels_from_table",
    "load_model",
    "model_importance",
    "plain_key",
    "plain_model",
    "plain_recipe",
    "predict_scores",
    "prepare",
    "prepare_training",
    "save_model",
    "spare_model",
    "streamed_examples",
    "train_model",
    "train_weights",
    "warm_up",
    "zero_weight_features",
]

log = logging.getLogger(__name__)


#: Training runs eagerly (no tf.function tracing) when it has at most this many steps
#: (``$HELIX_EAGER_MAX_STEPS`` overrides it: :func:`learners.training_setting`).
EAGER_MAX_STEPS = 20

#: The Keras dtype policy of each ``precision`` (anything else: float32).
POLICIES = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


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
    light: bool = False,
    plateau: Mapping[str, float] | None = None,
) -> tuple[Any, dict[str, float]]:
    """Train deterministically (seeded); returns the model and final training stats.

    ``light`` (approximate runs): train with :func:`._light_fit.light_fit`, a traced
    train step over seeded numpy batches, instead of Keras' ``fit`` and its ``tf.data``
    adapter (several times the cost over a sample); exact runs keep ``fit``. ``plateau``
    (the rule's parameters, light only): stop before ``epochs`` once the training loss
    falls by less than the sample resolves (:func:`._light_fit.plateau_rule`).

    ``batches`` (a :class:`helix_tf.components.distributed.Batches`, learners with a
    ``strategy`` only) replaces ``x`` and ``y``: global batches streamed from disk.

    ``on_epoch(epoch, epochs, loss, seconds)`` is called after every epoch (progress).
    ``y`` holds 0/1 labels (binary), class indices (multiclass) or the target values
    (regression, already transformed); a regression model is trained on the target
    standardised over these rows and returned with a :class:`Rescale` output, so it
    predicts on the target's own scale.

    In a process that trains through another (:func:`trainers.remote`: a served run and
    the server's trainer), the model returned is a :class:`trainers.RemoteModel`: that
    process keeps it and scores, saves and reads its weights; this one never builds a
    Keras model or runs a TensorFlow op unless the other process fails (then it builds
    the same model from the weights).
    """
    from helix_tf.components import trainers

    head = head or Head()
    n_epochs = int(epochs or learner.epochs)
    policy = POLICIES.get(precision, "float32")
    remote = trainers.remote()
    if remote is not None and getattr(learner, "strategy", None) is None and batches is None:
        trained = _train_remotely(
            remote, learner, features, x, y, head, policy, n_epochs, on_epoch, light, plateau
        )
        if trained is not None:
            return trained
    _k()  # Keras first: TensorFlow imported quietly
    import tensorflow as tf

    strategy = getattr(learner, "strategy", None)
    trainers.seed_generators(int(learner.seed), keep_kernels=light and strategy is None)
    tf.config.experimental.enable_op_determinism()
    with dtypes(policy):
        y, mean, std = _target(head, y, batches)
        if getattr(learner, "strategy", None) is not None:  # tf.distribute: the custom loop
            model, losses = _train_with_strategy(
                learner, features, x, y, head, batches, n_epochs, on_epoch
            )
        else:
            if batches is not None:
                raise ValueError("streamed batches need a learner with a strategy")
            training = _training(learner, features, x, y, head, n_epochs, policy, light, plateau)
            trained, weights, losses = _fit_weights(**training, on_epoch=on_epoch)
            trainers.hint(lambda: _hint_of(training))
            # A trainer kept for later trainings is not the caller's: a copy holds the weights.
            model = trained if trained is not None else _plain(learner, features, head, weights)
        if mean is not None and std is not None:
            model = _rescaled(model, mean, std)
    return model, _stats(losses, mean, std)


def prepare_training(learner: Learner) -> None:
    """Before a training's timer starts: import Keras (TensorFlow) here, unless another
    process (:func:`trainers.remote`) will train ``learner``.

    That process may be the trainer of a server this run started, still importing: its
    ``ready`` waits for it (bounded; :mod:`helix_tf.server._pending`), in place of this
    process importing the same libraries. Neither is the node's computation.
    """
    from helix_tf.components import trainers

    remote = trainers.remote()
    if remote is not None and getattr(learner, "strategy", None) is None and remote.ready():
        return
    _k()


def _train_with_strategy(
    learner: Learner,
    features: Sequence[Mapping[str, Any]],
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    head: Head,
    batches: Any,
    n_epochs: int,
    on_epoch: Callable[[int, int, float, float], None] | None,
) -> tuple[Any, list[float]]:
    """Train under the learner's ``tf.distribute`` strategy (the custom loop of
    :mod:`helix_tf.components.distributed`), from ``batches`` or from the arrays."""
    from helix_tf.components import distributed

    def build() -> tuple[Any, Any]:
        strengths = penalties.Strengths.of(learner)
        return build_model(learner, features, head.units, strengths), optimizer(learner, strengths)

    if batches is None:
        batches = distributed.ArrayBatches(
            x, y, batch_size=int(learner.batch_size), seed=int(learner.seed)
        )
    return distributed.train_loop(
        getattr(learner, "strategy", None),
        build=build,
        per_example_loss=head.keras_loss(reduction="none"),
        batches=batches,
        epochs=n_epochs,
        on_epoch=on_epoch,
    )


def _target(head: Head, y: np.ndarray, batches: Any) -> tuple[np.ndarray, Any, Any]:
    """What the model learns: class indices (multiclass) or the standardised target
    (regression, with its mean and std); 0/1 labels as they are."""
    if head.task == "regression" and batches is not None:
        mean, std = batches.scale  # streamed: standardised over all rows as it reads
        return y, mean, std
    if head.task == "regression":
        mean, std = target_spread(y)
        return standardized(y, mean, std).astype(np.float32), mean, std
    if head.task == "multiclass":
        return np.asarray(y, dtype=np.int32), None, None
    return y, None, None


def _stats(losses: Sequence[float], mean: Any, std: Any) -> dict[str, float]:
    stats: dict[str, float] = {"train_loss": float(losses[-1])}
    if mean is not None and std is not None:
        stats.update(target_mean=mean, target_std=std)
    return stats


def _training(
    learner: Learner,
    features: Sequence[Mapping[str, Any]],
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    head: Head,
    n_epochs: int,
    policy: str,
    light: bool = False,
    plateau: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """:func:`_fit_weights`' arguments: what a training needs, here or in another process."""
    return {
        "learner": learner,
        "features": [dict(f) for f in features],
        "x": dict(x),
        "y": y,
        "head": head,
        "n_epochs": n_epochs,
        # Tracing the step costs ~0.5 s, an eager step ~30 ms: below this, eager wins.
        "run_eagerly": -(-len(y) // int(learner.batch_size)) * n_epochs
        <= training_setting(EAGER_STEPS_SETTING, EAGER_MAX_STEPS),
        "policy": policy,
        "light": light,
        "plateau": dict(plateau) if light and plateau else None,
    }


def _train_remotely(
    remote: Any,
    learner: Learner,
    features: Sequence[Mapping[str, Any]],
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    head: Head,
    policy: str,
    n_epochs: int,
    on_epoch: Callable[[int, int, float, float], None] | None,
    light: bool = False,
    plateau: Mapping[str, float] | None = None,
) -> tuple[Any, dict[str, float]] | None:
    """Train in ``remote`` (the server's trainer), which keeps the model; ``None`` when it
    cannot (busy, gone, failing): then this process trains."""
    import random

    from helix_tf.components import trainers

    y, mean, std = _target(head, y, None)
    training = _training(learner, features, x, y, head, n_epochs, policy, light, plateau)
    recipe = plain_recipe(training, None if mean is None else (mean, std))
    # The generators this process would have seeded before training here (TensorFlow's
    # are the trainer's business: no op runs in this process).
    random.seed(int(learner.seed))
    np.random.seed(int(learner.seed))
    reply = remote.train(training, on_epoch, recipe)
    if reply is None:
        return None
    model = trainers.RemoteModel(
        remote=remote,
        token=reply["model"],
        recipe=recipe,
        trained_weights=reply["weights"],
        linear=reply["linear"],
    )
    return model, _stats(reply["losses"], mean, std)


def plain_recipe(
    training: Mapping[str, Any], rescale: tuple[float, float] | None
) -> dict[str, Any]:
    """What :func:`plain_model` builds for ``training`` (:func:`_training`), ``rescale``
    being a regression target's mean and std (None: not rescaled)."""
    return {
        "learner": training["learner"],
        "features": training["features"],
        "head": training["head"],
        "policy": training["policy"],
        "rescale": rescale,
    }


def plain_model(
    recipe: Mapping[str, Any], weights: Sequence[np.ndarray] | None, *, reuse: Any = None
) -> Any:
    """The model a training returns, built from its weights: the architecture of
    ``recipe["learner"]`` over its features and head, under its dtype policy, with the
    ``Rescale`` output of a regression (``recipe["rescale"]``: the target's mean and std).

    Built without moving the random generators, its layers named as in a fresh process.
    ``reuse``: a model built here before for the same :func:`plain_key` that nobody
    holds any more; it takes the weights and the learner's penalty strengths instead of
    a new build (0.1–0.5 s, more under load): the same model. ``weights`` None: as
    built, for a later training's weights (a spare, :func:`spare_model`).
    """
    if reuse is not None and weights is not None:
        reuse.set_weights(list(weights))
        for strengths in _strengths_of(reuse):
            strengths.assign(recipe["learner"].l1, recipe["learner"].l2)
        return reuse
    with dtypes(recipe["policy"]):
        model = _plain(recipe["learner"], recipe["features"], recipe["head"], weights)
        if recipe.get("rescale") is not None:
            model = _rescaled(model, *recipe["rescale"])
    return model


def plain_key(recipe: Mapping[str, Any]) -> str:
    """What a :func:`plain_model` is, but for its weights and penalty strengths: models of
    one key differ only in those."""
    from helix_tf.components import trainers

    key = trainers.graph_key(
        recipe["learner"],
        recipe["features"],
        recipe["head"],
        policy=recipe["policy"],
        run_eagerly=False,
    )
    return f"{key}|rescale={recipe.get('rescale')!r}"


def _strengths_of(model: Any) -> list[penalties.Strengths]:
    """The penalty strengths a model's regularizers read (one object, or none)."""
    found: dict[int, penalties.Strengths] = {}
    for layer in model.layers:
        for attr in ("kernel_regularizer", "regularizer"):
            strengths = getattr(getattr(layer, attr, None), "strengths", None)
            if isinstance(strengths, penalties.Strengths):
                found[id(strengths)] = strengths
    return list(found.values())


def _plain(
    learner: Learner,
    features: Sequence[Mapping[str, Any]],
    head: Head,
    weights: Sequence[np.ndarray] | None,
) -> Any:
    """A plain (uncompiled) model of ``learner``'s architecture holding ``weights``
    (None: as built)."""
    from helix_tf.components import trainers

    with trainers.random_state_kept(), _fresh_names():
        model = build_model(learner, features, head.units)
    if weights is not None:
        model.set_weights(list(weights))
    return model


@contextlib.contextmanager
def _fresh_names() -> Iterator[None]:
    """Keras' automatic layer names (``dropout``, ``dropout_1``) as in a fresh process,
    wherever this process has built models before (the server's trainer)."""
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # another Keras: names may differ, weights do not
        yield
        return
    saved = global_state.get_global_attribute("object_name_uids")
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    try:
        yield
    finally:
        global_state.set_global_attribute("object_name_uids", saved)


def _rescaled(model: Any, mean: float, std: float) -> Any:
    """Predictions on the target's scale: the model with its standardisation undone.
    float32 even under a mixed-precision policy: the scale is the label's own."""
    keras = _k()
    scaled = _keras_layers.Rescale(mean, std, name="rescale", dtype="float32")(model.outputs[0])
    return keras.Model(inputs=model.inputs, outputs=scaled, name="helix_model")


def train_weights(
    training: Mapping[str, Any],
    on_epoch: Callable[[int, int, float, float], None] | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """What :func:`train_model` trains, for another process (the server's trainer): the
    trained weights and each epoch's loss for ``training`` (:func:`_training`), seeded
    and under its dtype policy as :func:`train_model` sets them."""
    from helix_tf.components import trainers

    _k()  # Keras first: TensorFlow imported quietly
    import tensorflow as tf

    trainers.seed_generators(
        int(training["learner"].seed), keep_kernels=bool(training.get("light"))
    )
    tf.config.experimental.enable_op_determinism()
    with dtypes(training["policy"]):
        _, weights, losses = _fit_weights(**training, on_epoch=on_epoch)
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
    light: bool = False,
    plateau: Mapping[str, float] | None = None,
) -> tuple[Any, list[np.ndarray], list[float]]:
    """``model.fit`` (``light``: :func:`._light_fit.light_fit`) on a trainer of
    :data:`trainers.TRAINERS`: reused when this process has trained the same graph
    before (reset to a fresh build's state: the same bits).

    The trained model (``None`` when its trainer is kept for a later training: then it
    is not the caller's), its weights and each epoch's loss.
    """
    from helix_tf.components import trainers

    key, trainer = _trainer(learner, features, head, run_eagerly, policy, light)
    if light:  # an approximate run's training (see _light_fit)
        losses, trainer.light_step = _light_fit.light_fit(
            trainer.model,
            x,
            y,
            batch_size=int(learner.batch_size),
            epochs=n_epochs,
            seed=int(learner.seed),
            step=trainer.light_step,
            on_epoch=on_epoch,
            plateau=plateau,
            linear=_linear_step.light_arguments(
                trainer, learner, features, head, policy=policy, run_eagerly=run_eagerly
            ),
        )
        trainer.light_generation = trainers.kernel_generation()
    else:
        losses = _keras_fit(trainer.model, x, y, int(learner.batch_size), n_epochs, on_epoch)
    weights = [np.asarray(w) for w in trainer.model.get_weights()]
    # Back to the cache only after a whole fit (one interrupted mid-fit never is).
    if trainers.TRAINERS.give_back(key, trainer):
        return None, weights, losses
    return trainer.model, weights, losses


def _trainer(
    learner: Learner,
    features: Sequence[Mapping[str, Any]],
    head: Head,
    run_eagerly: bool,
    policy: str,
    light: bool,
) -> tuple[str, Any]:
    """The graph key of a training and a trainer of :data:`trainers.TRAINERS` for it:
    reused and reset, or built (right after the caller has seeded the generators)."""
    from helix_tf.components import trainers

    def build() -> tuple[Any, penalties.Strengths]:
        if light:  # seeded keeping TF's kernels (for a reused trainer): a new one starts
            trainers.clear_kernels()  # as after set_random_seed
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
    return key, trainers.TRAINERS.trainer(key, build, learner)


def _keras_fit(
    model: Any,
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    batch_size: int,
    n_epochs: int,
    on_epoch: Callable[[int, int, float, float], None] | None,
) -> list[float]:
    """Keras' ``fit`` (an exact run's training); each epoch's loss."""
    keras = _k()
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
    history = model.fit(
        dict(x),
        y,
        batch_size=batch_size,
        epochs=n_epochs,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    return list(history.history.get("loss", [float("nan")]))
