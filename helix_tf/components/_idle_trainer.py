"""A trainer's first-use costs paid while it is idle, in a process that keeps trainers (the
server's trainer): the graph a run hints it trained, built and its light step traced
(:func:`prepare`), and TensorFlow's own start-up (:func:`warm_up`). Re-exported by
:mod:`helix_tf.components.keras_models`, whose trainers they make ready.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from helix_tf.components import _light_fit, _linear_step, penalties
from helix_tf.components._keras_layers import dtypes, keras as _k
from helix_tf.components._model_build import Head, build_model, optimizer
from helix_tf.components._model_use import predict_scores
from helix_tf.types import CATEGORICAL, NUMERIC

__all__ = ["HINT_ROWS", "hint_of", "prepare", "spare_model", "warm_up"]


#: The rows of a training that :func:`prepare` runs its light step over (any few do).
HINT_ROWS = 8


def hint_of(training: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`prepare` needs of a training: all of it but a few of its rows."""
    rows = min(HINT_ROWS, len(training["y"]))
    return {
        **training,
        "x": {k: np.array(v[:rows]) for k, v in training["x"].items()},
        "y": np.array(training["y"][:rows]),
    }


def prepare(training: Mapping[str, Any]) -> bool:
    """Make ready the trainer a later light training of ``training``'s graph reuses, in a
    process that keeps trainers (the server's trainer, while idle: after each training
    it served, and from the hint of a run that trained by itself, :func:`trainers.hint`).

    Ready means kept, built as that training's would be (seeded by its learner), with
    its light step (approximate runs, :mod:`._light_fit`) traced and run once over
    ``training``'s rows since TensorFlow's kernel cache was last cleared
    (:func:`trainers.kernel_generation`: an exact training's seeding clears it), so that
    TensorFlow has instantiated it: the next training of the graph resets the trainer to
    its initial state (the same bits as a fresh build) and skips the build (~0.1–0.3 s),
    a light one also the step's tracing (~0.5–1 s) and instantiation (~0.1–0.3 s). A
    trainer an exact training left (Keras' ``fit``) gets its light step here. Not
    Keras' ``fit``: tracing it too made the preparation longer than the tiny warm-up it
    stands before, and a run that came during it waited longer. Whether it did anything
    (not when the kept trainer is ready already, or this process keeps none).
    """
    from helix_tf.components import trainers

    learner, features, head = training["learner"], training["features"], training["head"]
    run_eagerly, policy = bool(training["run_eagerly"]), training["policy"]
    key = trainers.graph_key(learner, features, head, policy=policy, run_eagerly=run_eagerly)
    if trainers.TRAINERS.capacity == 0:
        return False
    trainer = trainers.TRAINERS.take(key, reuse=False)
    if trainer is not None and (
        run_eagerly or trainer.light_generation == trainers.kernel_generation()
    ):
        trainers.TRAINERS.give_back(key, trainer)  # ready (an eager step needs nothing)
        return False
    from helix_tf.components.keras_models import _trainer

    _k()  # Keras first: TensorFlow imported quietly
    import tensorflow as tf

    if trainer is None:
        trainers.seed_generators(int(learner.seed))  # as a fresh training seeds its build
    tf.config.experimental.enable_op_determinism()
    with dtypes(
        policy
    ):  # a trainer whose preparation fails is dropped: the next training builds one
        if trainer is None:
            key, trainer = _trainer(learner, features, head, run_eagerly, policy, light=False)
        if not run_eagerly:  # a kept trainer's variables move: its next use resets them
            rows = len(training["y"])
            _, trainer.light_step = _light_fit.light_fit(
                trainer.model,
                training["x"],
                training["y"],
                batch_size=rows,
                epochs=1,
                seed=int(learner.seed),
                step=trainer.light_step,
                linear=_linear_step.light_arguments(
                    trainer, learner, features, head, policy=policy, run_eagerly=run_eagerly
                ),
            )
            trainer.light_generation = trainers.kernel_generation()
        trainers.TRAINERS.give_back(key, trainer)
    return True


def spare_model(
    training: Mapping[str, Any], *, free: Callable[[str], Any]
) -> tuple[str, Any] | None:
    """Make ready the model a later training of ``training``'s graph returns (the server's
    trainer, while idle): ``free(key)``, a kept model of that ``plain_key`` nobody can ask
    for any more (None: there is none), else a new one, as ``plain_model`` builds it (no
    weights of its own: the training's replace them, with its penalty strengths, as a
    recycled model's do), returned with its key to be kept. Either way its inference is
    traced and run once over ``training``'s rows, as an approximate run's predict and
    explain nodes call it (``predict_scores(traced=True)``: the same input signature, so
    the same traced function; a model an exact run used was never traced). None also for
    a regression: its model is rescaled by its target's mean and standard deviation, which
    are part of its key and known only after training.
    """
    from helix_tf.components.keras_models import plain_key, plain_model, plain_recipe

    head = training["head"]
    if head.task == "regression":
        return None
    recipe = plain_recipe(training, None)
    key = plain_key(recipe)
    model = free(key)
    made = model is None
    if made:
        model = plain_model(recipe, None)
    predict_scores(model, training["x"], head.task, traced=True)
    return (key, model) if made else None


def warm_up() -> None:
    """Pay TensorFlow's first-use costs in this process: a tiny linear model built,
    compiled, trained with a traced step and scored (the server's trainer, while idle).

    The first training in a process costs seconds more than the next (TensorFlow's
    runtime and thread pools, kernels, ``tf.function`` and Keras' data adapter set up
    once); a served run that finds the trainer cold waits for them. Nothing of it is
    kept in :data:`trainers.TRAINERS` (every training seeds the generators itself).
    """
    from helix_tf.components import trainers
    from helix_tf.components.keras_models import EAGER_MAX_STEPS, _plain
    from helix_tf.components.learners import Linear

    _k()  # Keras imported (and its layers registered) before TensorFlow is used
    import tensorflow as tf

    rng = np.random.default_rng(0)
    rows = 8 * (EAGER_MAX_STEPS + 4)  # one epoch of more steps than run eagerly: traced
    features = [{"name": "n", "kind": NUMERIC}, {"name": "c", "kind": CATEGORICAL, "size": 4}]
    x = {
        "n": rng.normal(size=(rows, 1)).astype(np.float32),
        "c": rng.integers(0, 4, size=(rows, 1)).astype(np.int32),
    }
    y = (x["n"][:, 0] > 0).astype(np.float32)
    learner = Linear(l2=1e-4, epochs=1, batch_size=8)
    # Every training seeds the generators again; TensorFlow's kernels stay (a light step
    # prepared before, :func:`prepare`, stays instantiated).
    trainers.seed_generators(0, keep_kernels=True)
    tf.config.experimental.enable_op_determinism()
    strengths = penalties.Strengths.of(learner)
    model = build_model(learner, features, 1, strengths)
    model.compile(optimizer=optimizer(learner, strengths), loss=Head().keras_loss())
    model.optimizer.build(model.trainable_variables)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=True, verbose=0)
    predict_scores(_plain(learner, features, Head(), model.get_weights()), x)
