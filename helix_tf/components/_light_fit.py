"""The approximate runs' training loop: a traced train step over seeded batches.

Keras' ``fit`` over numpy arrays builds a ``tf.data`` pipeline (the data adapter:
index shuffling, a gather per batch in a map, an iterator per epoch) around its
train step. Over a sample that pipeline is most of the training: at 32k census rows,
5 epochs of batch 1024 (160 steps) took ~1.0 CPU-s in ``fit`` on a reused trainer
here, and ~0.2 CPU-s as the same traced ``train_step`` called per batch, each batch
gathered from the sample held as tensors (load 2–5).
An approximate run trains with this loop instead (``light=True`` in
:func:`helix_tf.components.keras_models.train_model`); an exact run keeps ``fit``,
bit for bit what it computed before.

The loop is the same training but for the batches' order: each epoch visits every
row once in an order drawn from ``numpy.random.default_rng(seed)`` (the learner's
seed), so the same sample gives the same weights in any process (a served run's
trainer, a run alone). The step is Keras' own ``train_step`` (the model's loss,
optimizer, regularisers, dropout and loss scaling), taken for every batch of an epoch
in one traced loop (one graph call an epoch: :func:`_epoch_function`), traced once per
trainer and kept with it; the reported loss per epoch is Keras' running mean over the
epoch's steps, as ``fit`` reports it.

An approximate run trains its sample for the exact run's steps (more epochs over
fewer rows: :mod:`helix_tf.approx.settings`) and stops sooner once the epochs' losses
have stopped falling by more than the sample can resolve (:func:`plateau_rule`,
:func:`plateaued`): a decision on the losses and the sample's size alone, so the same
sample stops at the same epoch in any process.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["input_shapes", "light_fit", "plateau_rule", "plateaued"]


def light_fit(
    model: Any,
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    *,
    batch_size: int,
    epochs: int,
    seed: int,
    step: Any = None,
    on_epoch: Callable[[int, int, float, float], None] | None = None,
    plateau: Mapping[str, float] | None = None,
) -> tuple[list[float], Any]:
    """Train the compiled ``model`` for ``epochs`` over ``x``/``y``; each epoch's loss, and
    the epoch function used (``step``: one kept from an earlier call on this model, else
    made here: :func:`_epoch_function`).

    ``on_epoch(epoch, epochs, loss, seconds)`` is called after every epoch. ``plateau``
    (the rule's parameters, :func:`plateau_rule`): stop after the first epoch where
    :func:`plateaued` holds for the losses so far, with the tolerance and window that
    rule gives these ``epochs`` over these rows.
    """
    if not getattr(model, "run_eagerly", False):  # the sample on the device once
        import tensorflow as tf

        x = {name: tf.convert_to_tensor(values) for name, values in x.items()}
        y = tf.convert_to_tensor(y)
    step = step or _epoch_function(model, x, y)
    n = len(y)
    rng = np.random.default_rng(int(seed))
    started = time.perf_counter()
    losses: list[float] = []
    tolerance, window = plateau_rule(plateau, epochs, n) if plateau else (0.0, 0)
    for epoch in range(epochs):
        model.reset_metrics()
        step(x, y, rng.permutation(n), int(batch_size))
        loss = float(model.get_metrics_result().get("loss", math.nan))
        losses.append(loss)
        if on_epoch is not None:
            on_epoch(epoch + 1, epochs, loss, time.perf_counter() - started)
        if window and plateaued(losses, tolerance, window):
            break
    return losses, step


def plateau_rule(plateau: Mapping[str, float], epochs: int, rows: int) -> tuple[float, int]:
    """The tolerance and window of :func:`plateaued` for a training of ``epochs`` planned
    epochs over a sample of ``rows`` rows, by the rule's parameters ``plateau``:
    ``errors`` (standard errors), ``share`` (of the planned epochs a window) and
    ``epochs`` (the longest window).

    The tolerance is how much optimisation a sample can resolve. The mean training loss
    over ``rows`` rows estimates the population's loss with a standard error of
    ``sd / sqrt(rows)``, ``sd`` the per-example losses' standard deviation; taking ``sd``
    as the mean loss itself (a log loss's spread is about its mean or more: 1.2–1.6 times
    it for census' linear learners), the relative standard error is ``1 / sqrt(rows)``,
    at most the real one. A window's mean loss that fell by less than ``errors`` of
    those against the window before has improved by less than the sample can tell the
    population's loss by: more steps fit the sample, not the population. So the tolerance is ``errors / sqrt(rows)`` of the
    loss: a larger sample resolves more and trains on (never stops earlier on the same
    losses); the rule is scale-free (a share of the loss). The window is ``share`` of the
    planned epochs, 2 to ``epochs`` (a short training is not held to twenty epochs).

    >>> plateau_rule({"errors": 1.0, "share": 0.1, "epochs": 10}, 490, 32_400)
    (0.005555555555555556, 10)
    >>> plateau_rule({"errors": 1.0, "share": 0.1, "epochs": 10}, 50, 32_400)[1]
    5
    >>> plateau_rule({"errors": 1.0, "share": 0.1, "epochs": 10}, 5, 32_400)[1]
    2
    """
    tolerance = float(plateau["errors"]) / math.sqrt(max(int(rows), 1))
    window = min(int(plateau["epochs"]), max(2, int(int(epochs) * float(plateau["share"]))))
    return tolerance, window


def plateaued(losses: Sequence[float], tolerance: float, window: int) -> bool:
    """Whether a training loss has stopped falling: the mean of its last ``window``
    epochs is below the mean of the ``window`` epochs before by ``tolerance`` of itself
    or less (``2 * window`` epochs at least; a loss that is not finite never has). The
    tolerance and window: :func:`plateau_rule`.

    >>> plateaued([1.0] * 4, 1e-3, 2), plateaued([1.0, 0.9, 0.8, 0.7], 1e-3, 2)
    (True, False)
    >>> plateaued([1.0] * 3, 1e-3, 2)
    False
    """
    if window < 1 or len(losses) < 2 * window:
        return False
    before = math.fsum(losses[-2 * window : -window]) / window
    last = math.fsum(losses[-window:]) / window
    if not (math.isfinite(before) and math.isfinite(last)):
        return False
    return before - last <= tolerance * abs(last)


def _epoch_function(model: Any, x: Any, y: Any) -> Callable[[Any, Any, Any, Any], None]:
    """One epoch: Keras' ``train_step`` on each batch of rows ``order[i * bs:(i + 1) * bs]``,
    the whole epoch one graph call.

    The epoch is traced once into a concrete function (over a sample like ``x`` and
    ``y`` of any number of rows, bags of any width where the model's inputs leave it
    open, any order and batch size: one trace per trainer whatever the sample's or the
    batch's size): a ``tf.while_loop`` whose body gathers a batch's rows and takes the
    step. Before, each batch was one graph call from Python (~1 ms a step of FTRL over
    census, as much as the step's own ops: a served approximate FTRL census ×10 run
    takes ~1,600 steps); in the loop a step costs its ops alone (~1.7x fewer seconds a
    step for FTRL at load 4, ``benchmarks/results/issue9s11_apx_*``).

    The steps stay in order: the loop runs one iteration at a time
    (``parallel_iterations=1``: the executor starts a step only once every op of the one
    before has run), and the next batch's start depends on the step's outputs; within a
    step, TensorFlow's automatic control dependencies order each variable's reads after
    its writes, as in a traced step. (Session 10 saw a whole-epoch loop's bits move from
    run to run: its steps' reads raced the updates before them.) The same sample and
    seed give the same bits in any process and on a reused trainer, and in every case
    tested the bits of one graph call a batch (FTRL, Adam, dropout: tested); Grappler
    rewrites the graph around the loop, so that is not promised for every model, hence
    ``loop_version`` in the approximate learner's fingerprint. The loop costs once: its
    first call (TensorFlow instantiating the function) took ~0.7–1 s against ~0.3–0.4 s
    for the one-step function (FTRL, census, load 4–5), paid by a new trainer or after an
    exact training cleared the kernel cache (the server's idle trainer pays it between
    runs: :mod:`._idle_trainer`). A model that runs eagerly steps eagerly.
    """
    if getattr(model, "run_eagerly", False):

        def eager_epoch(x: Any, y: Any, order: np.ndarray, batch_size: int) -> None:
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                model.train_step(({k: v[rows] for k, v in x.items()}, y[rows]))

        return eager_epoch

    import tensorflow as tf

    declared = input_shapes(model)

    def spec(t: Any, name: str | None = None) -> Any:
        # Any number of rows; the rest as the model's input declares it (a bag's width
        # is the sample's longest bag: any), else as the sample has it.
        rest = declared.get(name, t.shape)[1:] if name is not None else t.shape[1:]
        if len(rest) != len(t.shape) - 1:
            rest = t.shape[1:]
        return tf.TensorSpec([None, *rest], t.dtype)

    step = tf.function(  # not converted by AutoGraph: as Keras traces its own step
        functools.partial(_epoch_loop, model),
        input_signature=(
            {name: spec(t, name) for name, t in x.items()},
            spec(y),
            tf.TensorSpec([None], tf.int64),
            tf.TensorSpec([], tf.int64),
        ),
        autograph=False,
    ).get_concrete_function()

    def epoch(x: Any, y: Any, order: np.ndarray, batch_size: int) -> None:
        rows = tf.constant(np.asarray(order, dtype=np.int64))
        step(x, y, rows, tf.constant(int(batch_size), tf.int64))

    return epoch


def _epoch_loop(model: Any, xs: Any, ys: Any, order: Any, batch_size: Any) -> Any:
    """The traced epoch of :func:`_epoch_function`: ``model``'s train step on each batch of
    ``order``, one loop iteration at a time, the next batch's start after the step."""
    import tensorflow as tf

    n = tf.shape(order, out_type=tf.int64)[0]

    def body(start: Any) -> Any:
        rows = order[start : tf.minimum(start + batch_size, n)]
        batch = {name: tf.gather(values, rows) for name, values in xs.items()}
        logs = model.train_step((batch, tf.gather(ys, rows)))
        with tf.control_dependencies(tf.nest.flatten(logs)):
            return start + batch_size

    return tf.while_loop(
        lambda start: start < n, body, [tf.constant(0, tf.int64)], parallel_iterations=1
    )


def input_shapes(model: Any) -> dict[str, tuple[int | None, ...]]:
    """The shapes the model's named inputs declare (``None``: any), where it has them."""
    inputs = getattr(model, "input", None)
    if not isinstance(inputs, Mapping):
        return {}
    return {name: tuple(t.shape) for name, t in inputs.items() if getattr(t, "shape", None)}
