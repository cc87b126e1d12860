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
epoch's steps, as ``fit`` reports it, summed by the loop itself rather than in Keras'
loss tracker each step (:class:`_EpochLoss`: the same float). Where the optimizer allows
it (Adam, SGD, FTRL), the step's update is one update over all the model's weights
(:class:`_FlatUpdate`): Keras' arithmetic to the bit in fewer graph nodes, a step
costing its nodes. A plain linear model steps over one table of all its weights instead
(:mod:`._linear_step`: the same training in about half the graph nodes, not Keras' bits).

An approximate run trains its sample for the exact run's steps (more epochs over
fewer rows: :mod:`helix_tf.approx.settings`) and stops sooner once the epochs' losses
have stopped falling by more than the sample can resolve (:func:`plateau_rule`,
:func:`plateaued`): a decision on the losses and the sample's size alone, so the same
sample stops at the same epoch in any process.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from helix_tf.components import _linear_step

__all__ = ["in_order", "input_shapes", "light_fit", "plateau_rule", "plateaued"]


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
    linear: tuple[Any, Any, Any] | None = None,
) -> tuple[list[float], Any]:
    """Train the compiled ``model`` for ``epochs`` over ``x``/``y``; each epoch's loss, and
    the epoch function used (``step``: one kept from an earlier call on this model, else
    made here: :func:`_epoch_function`).

    ``on_epoch(epoch, epochs, loss, seconds)`` is called after every epoch. ``plateau``
    (the rule's parameters, :func:`plateau_rule`): stop after the first epoch where
    :func:`plateaued` holds for the losses so far, with the tolerance and window that
    rule gives these ``epochs`` over these rows. ``linear`` (a linear model's
    :class:`._linear_step.Layout`, its head and its penalty strengths): a new step is
    the one-table step of :mod:`._linear_step` rather than Keras' own.
    """
    if not getattr(model, "run_eagerly", False):  # the sample on the device once
        import tensorflow as tf

        x = {name: tf.convert_to_tensor(values) for name, values in x.items()}
        y = tf.convert_to_tensor(y)
    step = step or _epoch_function(model, x, y, linear)
    # The step's state from the model's (reset by its trainer), the sample as it reads it.
    x, y = getattr(step, "prepare", _as_they_are)(x, y)
    n = len(y)
    rng = np.random.default_rng(int(seed))
    started = time.perf_counter()
    losses: list[float] = []
    tolerance, window = plateau_rule(plateau, epochs, n) if plateau else (0.0, 0)
    for epoch in range(epochs):
        loss = step(x, y, rng.permutation(n), int(batch_size))
        losses.append(loss)
        if on_epoch is not None:
            on_epoch(epoch + 1, epochs, loss, time.perf_counter() - started)
        if window and plateaued(losses, tolerance, window):
            break
    getattr(step, "finish", _nothing)()  # the trained weights into the model's variables
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


def _epoch_function(
    model: Any, x: Any, y: Any, linear: tuple[Any, Any, Any] | None = None
) -> Callable[[Any, Any, Any, Any], float]:
    """One epoch: Keras' ``train_step`` on each batch of rows ``order[i * bs:(i + 1) * bs]``,
    the whole epoch one graph call; it returns the epoch's loss (Keras' running mean, as
    ``fit`` reports it: in the traced loop summed in the loop, :class:`_EpochLoss`).

    The epoch is traced once into a concrete function (over a sample like ``x`` and
    ``y`` of any number of rows, bags of any width where the model's inputs leave it
    open, any order and batch size: one trace per trainer whatever the sample's or the
    batch's size): a ``tf.while_loop`` whose body gathers a batch's rows and takes the
    step (in the loop a step costs its ops alone, not a graph call from Python: ~1.7x
    fewer seconds a FTRL step, ``benchmarks/results/issue9s11_apx_*``). ``linear``: the
    one-table step of :mod:`._linear_step` (a linear model) instead of Keras' step.

    The steps stay in order (:func:`in_order`: one iteration at a time, the next batch
    after the step's outputs; within a step, automatic control dependencies order each
    variable's reads after its writes). The same sample and seed give the same bits in
    any process and on a reused trainer, and in every case tested the bits of one graph
    call a batch (FTRL, Adam, dropout); Grappler rewrites the graph around the loop, so
    that is not promised for every model, hence ``loop_version`` in the approximate
    learner's fingerprint. Its first call (TensorFlow instantiating it) costs a new
    trainer, or one after an exact training cleared the kernel cache (paid between runs
    by the server's :mod:`._idle_trainer`). A model that runs eagerly steps eagerly.
    """
    if linear is not None:
        return _linear_step.epoch_function(model, *linear)
    if getattr(model, "run_eagerly", False):

        def eager_epoch(x: Any, y: Any, order: np.ndarray, batch_size: int) -> float:
            model.reset_metrics()
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                model.train_step(({k: v[rows] for k, v in x.items()}, y[rows]))
            return float(model.get_metrics_result().get("loss", math.nan))

        return eager_epoch

    import tensorflow as tf

    declared = input_shapes(model)
    flat = _FlatUpdate.of(model)

    def spec(t: Any, name: str | None = None) -> Any:
        # Any number of rows; the rest as the model's input declares it (a bag's width
        # is the sample's longest bag: any), else as the sample has it.
        rest = declared.get(name, t.shape)[1:] if name is not None else t.shape[1:]
        if len(rest) != len(t.shape) - 1:
            rest = t.shape[1:]
        return tf.TensorSpec([None, *rest], t.dtype)

    with (
        _EpochLoss.tracing(model),
        flat.tracing() if flat is not None else contextlib.nullcontext(),
    ):
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

    def epoch(x: Any, y: Any, order: np.ndarray, batch_size: int) -> float:
        rows = tf.constant(np.asarray(order, dtype=np.int64))
        return float(step(x, y, rows, tf.constant(int(batch_size), tf.int64)))

    if flat is not None:

        def prepare(x: Any, y: Any) -> tuple[Any, Any]:
            flat.start()
            return x, y

        epoch.prepare = prepare  # type: ignore[attr-defined]
    return epoch


def _nothing() -> None:
    return None


def _as_they_are(x: Any, y: Any) -> tuple[Any, Any]:
    return x, y


class _EpochLoss:
    """Keras' loss tracker and metrics in the light loop's traced step: the epoch's loss
    summed in the loop, not in the model's metric variables.

    Keras' ``train_step`` adds each step's loss to its loss tracker (a ``Mean``: two
    variables read and assigned a step) and returns ``compute_metrics``' results (the
    tracker's mean, divided anew each step); the light loop reads the epoch's mean once,
    after its last step. While the loop is traced (:meth:`tracing`) the step hands its
    loss and batch size here instead (:meth:`update_state`, the tracker's arithmetic to
    the bit: ``reduce_to_samplewise_values``, the weighted loss added to the total, the
    batch size to the count) and computes no metrics; the sums are the loop's variables,
    and the epoch's loss ``total / count`` (``divide_no_nan``, as ``Mean.result``): the
    same float as the tracker's (``tests/components/test_light_fit.py``). The model's
    compiled metrics are not updated in the light loop (helix_tf compiles none; the
    loop reported the loss alone). An exact run's ``fit`` never sees this.
    """

    def __init__(self, tracker: Any) -> None:
        self.dtype = tracker.dtype
        self.steps: list[tuple[Any, Any]] = []

    @classmethod
    @contextlib.contextmanager
    def tracing(cls, model: Any) -> Iterator[None]:
        """While the loop is traced, ``model``'s step reports its loss here, no metrics."""
        tracker = model._loss_tracker
        object.__setattr__(model, "_loss_tracker", cls(tracker))
        object.__setattr__(model, "compute_metrics", _no_metrics)
        try:
            yield
        finally:
            object.__delattr__(model, "compute_metrics")
            object.__setattr__(model, "_loss_tracker", tracker)

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        """Keras' ``Mean.update_state``'s reduction; its sums are :meth:`add`'s."""
        from keras.src.metrics.reduction_metrics import reduce_to_samplewise_values

        from helix_tf.components._keras_layers import keras

        ops = keras().ops
        values, weight = reduce_to_samplewise_values(
            values, sample_weight, reduce_fn=ops.mean, dtype=self.dtype
        )
        if weight is not None:
            count = ops.sum(weight)
        elif len(values.shape) >= 1:
            count = ops.shape(values)[0]
        else:
            count = 1
        self.steps.append((ops.sum(values), ops.cast(count, dtype=self.dtype)))

    def add(self, total: Any, count: Any) -> tuple[Any, Any]:
        """The sums after the step just traced (the tracker's ``assign_add``s)."""
        ((step_total, step_count),) = self.steps[-1:]
        return total + step_total, count + step_count


def _no_metrics(x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> dict[str, Any]:
    return {}


#: Keras' optimizers whose update over all the weights at once is the same arithmetic as
#: their update of each variable (:class:`_FlatUpdate`): elementwise, and a sparse gradient
#: only squared, added and assigned. Adagrad and RMSprop divide the gradient itself, which
#: Keras does otherwise for a sparse one: a dense weight's last bits moved in the flat
#: update (tested), so they keep Keras' update of each variable.
ELEMENTWISE = ("Adam", "SGD", "Ftrl")
#: ... over at least this many variables: each costs the flat update ~6 graph nodes
#: against ~20–45 of its own update, and the flat update ~20 more of its own (two
#: variables: 218 nodes a step flat against 205 Keras', Adam; tested with four).
FLAT_VARIABLES = 4


class _FlatUpdate:
    """One optimizer update over all of a model's weights, in the light loop's steps.

    Keras updates each variable with its own ops (FTRL ~45 graph nodes a variable: 428 of
    the ~810 of a census linear model's step, whose nine variables are tiny): the step's
    cost is its ops, not its arithmetic. For an optimizer whose update is elementwise
    (:data:`ELEMENTWISE`, without clipping, weight decay, EMA, loss scaling or
    accumulation, every weight one dtype, no constraints) over :data:`FLAT_VARIABLES`
    variables or more, the light loop's steps update
    one flat variable holding every weight with a twin of the model's optimizer (the
    same class and settings, its penalty strengths the model's), then copy each
    variable's part back: the nodes of one variable's update, not nine. The plumbing is
    lean too: a run of dense gradients' positions is one constant, the parts one split
    (a FTRL census step 577 graph nodes, against 641 with a range, a slice and their
    constants a variable and Keras' loss tracker).

    The same bits: the twin's gradient is every variable's gradient as one
    ``IndexedSlices`` over the flat weights (a dense gradient one slice per weight, an
    embedding's per-row slices as they are), so what Keras does with a variable's
    sparse gradient it does here row by row alike (FTRL and Adam square an embedding's
    per-row slices before summing them, apx16), and every weight's arithmetic is the
    one it was. ``tests/components/test_light_fit.py`` holds that to the bit against
    Keras' own step for every optimizer helix_tf offers. An exact run's ``fit`` never
    sees the twin: it only replaces ``apply_gradients`` while the light loop is traced
    (:meth:`tracing`).

    The twin's state (the flat weights, its slots and step count) is the training's:
    :meth:`start` sets it from the model's variables and the twin's fresh state before
    each training (a reused trainer's model was reset to a fresh build's state); the
    model's optimizer counts the steps (``iterations``) as before, its slots stay as
    built (a trainer's next use resets them anyway).
    """

    def __init__(self, model: Any) -> None:
        import tensorflow as tf

        self.model = model
        self.variables = list(model.trainable_variables)
        self.shapes = [tuple(int(d) for d in v.shape) for v in self.variables]
        sizes = [int(np.prod(shape)) for shape in self.shapes]
        self.offsets = [int(o) for o in np.cumsum([0, *sizes])]
        self.weights = tf.Variable(
            tf.zeros([self.offsets[-1]], self.variables[0].dtype), name="flat_weights"
        )
        self.twin = _twin(model.optimizer)
        self.twin.build([self.weights])
        self.fresh = [np.array(v.numpy()) for v in self.twin.variables]

    @classmethod
    def of(cls, model: Any) -> _FlatUpdate | None:
        """The flat update of ``model``'s light steps, or ``None`` where it would not be
        the same arithmetic (then Keras' own update)."""
        opt = getattr(model, "optimizer", None)
        variables = list(getattr(model, "trainable_variables", []))
        if opt is None or len(variables) < FLAT_VARIABLES or not _elementwise(opt):
            return None
        if len({v.dtype for v in variables}) != 1 or any(
            getattr(v, "constraint", None) is not None
            or getattr(v, "overwrite_with_gradient", False)
            for v in variables
        ):
            return None
        return cls(model)

    @contextlib.contextmanager
    def tracing(self) -> Iterator[None]:
        """While the light loop is traced, the model's optimizer applies gradients here."""
        opt = self.model.optimizer
        opt.apply_gradients = self.apply_gradients
        try:
            yield
        finally:
            del opt.apply_gradients

    def start(self) -> None:
        """The flat weights from the model's variables, the twin as built, its learning
        rate the model's optimizer's (before each training)."""
        import tensorflow as tf

        self.weights.assign(tf.concat([tf.reshape(v, [-1]) for v in self.variables], 0))
        for var, value in zip(self.twin.variables, self.fresh, strict=True):
            var.assign(value)
        self.twin.learning_rate = float(self.model.optimizer.learning_rate)

    def apply_gradients(self, grads_and_vars: Any) -> None:
        """Keras' ``apply_gradients`` for the traced step: the twin's update of the flat
        weights, each variable's part copied back, the model's optimizer's step counted."""
        import tensorflow as tf

        grads = [g for g, _ in grads_and_vars]  # in the model's trainable_variables' order
        if any(g is None for g in grads):  # a variable without a gradient: Keras' way
            opt = self.model.optimizer
            type(opt).apply_gradients(opt, list(zip(grads, self.variables, strict=True)))
            return
        values, indices, dense = [], [], []  # dense: a run of dense gradients' positions
        for grad, start, shape in zip(grads, self.offsets[:-1], self.shapes, strict=True):
            size = int(np.prod(shape))
            if isinstance(grad, tf.IndexedSlices):  # rows of a [rows, ...] variable
                if dense:
                    indices.append(tf.constant(np.concatenate(dense), tf.int64))
                    dense = []
                width = int(np.prod(shape[1:])) if shape else 1
                rows = tf.reshape(tf.cast(grad.indices, tf.int64), [-1, 1]) * width
                at = rows + tf.range(width, dtype=tf.int64)[None, :] + start
                indices.append(tf.reshape(at, [-1]))
                grad = grad.values
            else:  # its positions a constant, one for the run
                dense.append(np.arange(start, start + size, dtype=np.int64))
                grad = tf.convert_to_tensor(grad)
            values.append(grad if grad.shape.rank == 1 else tf.reshape(grad, [-1]))
        if dense:
            indices.append(tf.constant(np.concatenate(dense), tf.int64))
        flat = tf.IndexedSlices(
            tf.concat(values, 0), tf.concat(indices, 0), tf.constant([self.offsets[-1]], tf.int64)
        )
        self.twin.apply([flat], [self.weights])
        parts = tf.split(self.weights.read_value(), np.diff(self.offsets).tolist())
        for var, part, shape in zip(self.variables, parts, self.shapes, strict=True):
            var.assign(part if len(shape) == 1 else tf.reshape(part, shape))
        self.model.optimizer.iterations.assign_add(1)


def _elementwise(opt: Any) -> bool:
    """Whether ``opt`` updates each weight from its own gradient and state alone."""
    from helix_tf.components._keras_layers import keras

    classes = tuple(getattr(keras().optimizers, name) for name in ELEMENTWISE)
    return isinstance(opt, classes) and not any(
        getattr(opt, name, None)
        for name in (
            "clipnorm",
            "global_clipnorm",
            "clipvalue",
            "weight_decay",
            "use_ema",
            "loss_scale_factor",
            "gradient_accumulation_steps",
        )
    )


def _twin(opt: Any) -> Any:
    """A new optimizer of ``opt``'s class and settings; helix_tf's FTRL reads the same
    penalty strengths (:mod:`helix_tf.components.penalties`)."""
    config = opt.get_config()
    strengths = getattr(opt, "strengths", None)
    if strengths is None:
        return type(opt).from_config(config)
    config.pop("l1_regularization_strength", None)
    config.pop("l2_regularization_strength", None)
    return type(opt)(strengths=strengths, **config)


def _epoch_loop(model: Any, xs: Any, ys: Any, order: Any, batch_size: Any) -> Any:
    """The traced epoch of :func:`_epoch_function`: ``model``'s train step on each batch of
    ``order``, one loop iteration at a time, the next batch's start after the step; the
    epoch's loss (:class:`_EpochLoss`, traced in place of the model's loss tracker)."""
    import tensorflow as tf

    loss = model._loss_tracker

    def step(rows: Any, total: Any, count: Any) -> tuple[Any, Any]:
        batch = {name: tf.gather(values, rows) for name, values in xs.items()}
        model.train_step((batch, tf.gather(ys, rows)))  # no metrics: {}
        return loss.add(total, count)

    return in_order(step, order, batch_size, loss.dtype)


def in_order(
    step: Callable[[Any, Any, Any], tuple[Any, Any]], order: Any, batch_size: Any, dtype: Any
) -> Any:
    """A traced epoch's loop: ``step(rows, total, count)`` on each batch of rows of
    ``order`` (returning the loss sums after it); the epoch's loss ``total / count``.

    The steps stay in order: the loop runs one iteration at a time
    (``parallel_iterations=1``: the executor starts a step only once every op of the one
    before has run), and the next batch's start depends on the step's sums. (Session 10
    saw a whole-epoch loop's bits move from run to run: its steps' reads raced the
    updates before them.)"""
    import tensorflow as tf

    n = tf.shape(order, out_type=tf.int64)[0]

    def body(start: Any, total: Any, count: Any) -> Any:
        total, count = step(order[start : tf.minimum(start + batch_size, n)], total, count)
        with tf.control_dependencies([total, count]):
            return start + batch_size, total, count

    zero = tf.constant(0, dtype)
    _, total, count = tf.while_loop(
        lambda start, total, count: start < n,
        body,
        [tf.constant(0, tf.int64), zero, zero],
        parallel_iterations=1,
    )
    return tf.math.divide_no_nan(total, count)


def input_shapes(model: Any) -> dict[str, tuple[int | None, ...]]:
    """The shapes the model's named inputs declare (``None``: any), where it has them."""
    inputs = getattr(model, "input", None)
    if not isinstance(inputs, Mapping):
        return {}
    return {name: tuple(t.shape) for name, t in inputs.items() if getattr(t, "shape", None)}
