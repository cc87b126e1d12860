"""The approximate runs' light loop for linear learners: every weight one row of a table.

A linear model (:class:`helix_tf.components.learners.Linear`) is a sum of per-feature
weights: a numeric feature's one weight per output (a ``Dense`` kernel), a categorical
or bag feature's one per value (an ``IndexedWeights`` table), and a bias. Keras traces
that sum as one layer per feature, and its gradient as one per layer: over census'
eight features the light loop's step was ~580 graph nodes (~810 before the flat
update, :class:`._light_fit._FlatUpdate`), so tracing it took ~0.2-0.3 s, its first
call ~0.15-0.2 s more, and each step cost its nodes more than its arithmetic.

Here every weight is one row of a single table ``[rows, units]`` (:class:`Layout`: a
kernel one row, a table its rows, the bias the last), and a batch's logits are

    logits = x_numeric @ table[numeric rows]
             + sum over entries of value * table[entry's row]  + table[bias row]

where a categorical value is an entry of value 1 and a bag's words entries of their
values (:func:`design`). The loss is the model's (the head's Keras loss; a binary
head's ``sigmoid_cross_entropy_with_logits`` and its mean, the ops Keras runs for it),
plus the model's L1/L2 penalty over the rows that carry one (FTRL applies it in its
update instead), and the update is the learner's optimizer over the one table. The
step is ~270 nodes (census): traced in about half the time, ~2x faster a step.

**The same training, not the same bits.** The gradient of each weight is what Keras
computes for it, in the same form: a numeric weight's and the bias' summed over the
batch (one slice each), a categorical or bag table's one slice per lookup (the
optimizer squares each before summing, as for Keras' ``IndexedSlices``), all of them
dense when a penalty is on (as Keras adds a penalty's dense gradient to a table's).
Sums are taken in another order (one gather and one reduction instead of a layer a
feature), so weights differ from Keras' own step in their last bits (~1e-7 of a
census weight after five epochs: ``tests/components/test_linear_step.py``); hence a
new ``loop_version`` in the approximate learner's fingerprint. The same sample and seed
give the same bits in any process, on a fresh or a kept trainer.

Only for a plain linear model trained in float32 by an optimizer whose update is
elementwise (:data:`._light_fit.ELEMENTWISE`), its variables laid out as
:func:`helix_tf.components._model_build.build_model` lays them; anything else (a
network, mixed precision, Adagrad, RMSprop, an eager step) keeps Keras' step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from helix_tf.components._linear_scores import checked
from helix_tf.types import CATEGORICAL, NUMERIC

__all__ = ["Layout", "design", "epoch_function", "layout_of", "light_arguments"]


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """Where each of a linear model's weights is a row of the one table."""

    rows: int
    units: int
    #: (input name, row) of each numeric feature's weight, in the model's order.
    numeric: tuple[tuple[str, int], ...]
    #: (input name, first row, size) of each categorical feature's weights.
    lookups: tuple[tuple[str, int, int], ...]
    #: (feature name, first row, size) of each bag feature's (inputs ``name__idx``,
    #: ``name__val``).
    bags: tuple[tuple[str, int, int], ...]
    bias: int
    #: The rows the model's L1/L2 penalty reads (a prefix: every feature's weights), 0
    #: when it has none.
    penalized: int
    #: The model's trainable variables (first row, shape), in order.
    variables: tuple[tuple[int, tuple[int, ...]], ...]


def layout_of(
    model: Any,
    learner: Any,
    features: Sequence[Mapping[str, Any]],
    *,
    policy: str,
    run_eagerly: bool,
) -> Layout | None:
    """The one-table layout of ``model`` (built by ``build_model`` for ``learner`` over
    ``features``), or None where the light loop keeps Keras' step (see the module)."""
    from helix_tf.components import _light_fit
    from helix_tf.components.learners import DNN, Linear

    if (
        run_eagerly
        or policy != "float32"
        or not isinstance(learner, Linear)
        or isinstance(learner, DNN)
        or not _light_fit._elementwise(getattr(model, "optimizer", None))
    ):
        return None
    by_name = {layer.name: layer for layer in model.layers}
    variables = list(model.trainable_variables)
    expected: list[Any] = []
    numeric, lookups, bags = [], [], []
    penalized: list[bool] = []
    row = 0
    for spec in features:
        layer = by_name.get(f"w_{spec['name']}")
        weights = list(getattr(layer, "trainable_variables", []))
        if len(weights) != 1 or weights[0].dtype != "float32":
            return None
        shape = tuple(int(d) for d in weights[0].shape)
        size = shape[0]
        if spec["kind"] == NUMERIC:
            numeric.append((spec["name"], row))
            reg = getattr(layer, "kernel_regularizer", None)
        elif spec["kind"] == CATEGORICAL:
            lookups.append((spec["name"], row, size))
            reg = getattr(layer, "regularizer", None)
        else:
            bags.append((spec["name"], row, size))
            reg = getattr(layer, "regularizer", None)
        expected.append(weights[0])
        penalized += [reg is not None] * size
        row += size
    logit = by_name.get("logit")
    bias = list(getattr(logit, "trainable_variables", []))
    if len(bias) != 1:
        return None
    expected.append(bias[0])
    units = int(bias[0].shape[0])
    if [id(v) for v in expected] != [id(v) for v in variables] or any(
        tuple(int(d) for d in v.shape)[-1:] != (units,) for v in variables
    ):
        return None
    # Keras' penalty over every feature's weights or over none (one regularizer object).
    if any(penalized) and not all(penalized):
        return None
    shapes = [tuple(int(d) for d in v.shape) for v in variables]
    starts = np.cumsum([0, *(s[0] if len(s) == 2 else 1 for s in shapes)]).tolist()
    return Layout(
        rows=row + 1,
        units=units,
        numeric=tuple(numeric),
        lookups=tuple(lookups),
        bags=tuple(bags),
        bias=row,
        penalized=row if all(penalized) and penalized else 0,
        variables=tuple((int(s), shape) for s, shape in zip(starts, shapes, strict=False)),
    )


def design(layout: Layout, x: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """A sample's inputs as the step reads them: the numeric columns side by side
    ``[n, numeric]`` (float32), and each row's entries: their table rows ``[n, k]``
    (int64) and values ``[n, k]`` (float32; 1 for a categorical value). Raises
    ``ValueError`` naming the feature where an index lies outside its feature's table
    (Keras' lookup would fail there; here it would read another feature's weight)."""
    import tensorflow as tf

    n = int(next(iter(x.values())).shape[0]) if x else 0
    numeric = (
        tf.concat(
            [tf.cast(tf.reshape(x[name], [-1, 1]), tf.float32) for name, _ in layout.numeric], 1
        )
        if layout.numeric
        else tf.zeros([n, 0], tf.float32)
    )
    rows, values = [], []
    for name, first, size in layout.lookups:
        idx = tf.cast(tf.reshape(x[name], [-1, 1]), tf.int64)
        checked(name, idx.numpy(), size)
        rows.append(idx + first)
        values.append(tf.ones(tf.shape(idx), tf.float32))
    for name, first, size in layout.bags:
        idx = tf.cast(x[f"{name}__idx"], tf.int64)
        checked(name, idx.numpy(), size)
        rows.append(idx + first)
        values.append(tf.cast(x[f"{name}__val"], tf.float32))
    if not rows:
        return numeric, tf.zeros([n, 0], tf.int64), tf.zeros([n, 0], tf.float32)
    return numeric, tf.concat(rows, 1), tf.concat(values, 1)


def epoch_function(model: Any, layout: Layout, head: Any, strengths: Any) -> Any:
    """The light loop's epoch for a linear ``model`` laid out as ``layout``: called as
    ``epoch(x, y, order, batch_size)`` on what ``epoch.prepare(x, y)`` returned (before
    each training: the table from the model's variables, the optimizer as built, the
    sample as :func:`design` lays it out), returning the epoch's loss; ``epoch.finish()``
    writes the table back into the model's variables after the last epoch.

    Traced once (any number of rows, entries a row, order and batch size), for
    ``head``'s loss and the learner's optimizer (a twin of the model's, reading the
    same penalty ``strengths``, :func:`._light_fit._twin`)."""
    one = _OneTable(model, layout, head, strengths)

    def epoch(x: Any, y: Any, order: np.ndarray, batch_size: int) -> float:
        return one.epoch(x, y, order, batch_size)

    epoch.prepare = one.prepare  # type: ignore[attr-defined]
    epoch.finish = one.finish  # type: ignore[attr-defined]
    epoch.traced = one.traced  # type: ignore[attr-defined]
    return epoch


class _OneTable:
    """The state of :func:`epoch_function`'s step: the table, its optimizer, the loss."""

    def __init__(self, model: Any, layout: Layout, head: Any, strengths: Any) -> None:
        import tensorflow as tf

        from helix_tf.components import _light_fit

        self.model, self.layout = model, layout
        self.table = tf.Variable(
            tf.zeros([layout.rows, layout.units], tf.float32), name="linear_table"
        )
        self.twin = _light_fit._twin(model.optimizer)
        self.twin.build([self.table])
        self.fresh = [np.array(v.numpy()) for v in self.twin.variables]
        self.variables = list(model.trainable_variables)
        self.loss_of = _loss(head)
        self.numeric_rows = tf.constant([r for _, r in layout.numeric], tf.int64)
        self.bias_row = tf.constant([layout.bias], tf.int64)
        self.strengths = strengths
        on = strengths is not None and layout.penalized
        self.l1_on, self.l2_on = strengths.used if on else (False, False)
        self.traced: dict[str, Any] = {}

    def step_loss(self, xs: Any, rows: Any, values: Any, y: Any) -> Any:
        """A batch's loss: the head's over its logits, plus the model's penalty."""
        import tensorflow as tf

        table, layout = self.table, self.layout
        logits = tf.gather(table, self.bias_row)
        if layout.numeric:
            logits = tf.matmul(xs, tf.gather(table, self.numeric_rows)) + logits
        if layout.lookups or layout.bags:
            picked = tf.gather(table, rows) * tf.expand_dims(values, -1)
            logits = tf.reduce_sum(picked, axis=1) + logits
        loss = self.loss_of(y, logits)
        if self.l1_on or self.l2_on:  # Keras' L1L2 over every feature's weights
            weights = table[: layout.penalized]
            penalty = tf.constant(0.0, tf.float32)
            if self.l1_on:
                penalty += self.strengths.l1 * tf.reduce_sum(tf.abs(weights))
            if self.l2_on:
                penalty += self.strengths.l2 * tf.reduce_sum(tf.square(weights))
            loss = loss + penalty
        return loss

    def loop(self, xs: Any, rows: Any, values: Any, ys: Any, order: Any, batch_size: Any) -> Any:
        """One epoch, traced: a step a batch, in order (:func:`._light_fit.in_order`)."""
        import tensorflow as tf

        from helix_tf.components._light_fit import in_order

        def step(at: Any, total: Any, count: Any) -> tuple[Any, Any]:
            batch = tf.gather(xs, at), tf.gather(rows, at), tf.gather(values, at)
            with tf.GradientTape() as tape:
                loss = self.step_loss(*batch, tf.gather(ys, at))
            self.twin.apply([tape.gradient(loss, self.table)], [self.table])
            size = tf.cast(tf.shape(at)[0], tf.float32)
            return total + loss * size, count + size

        return in_order(step, order, batch_size, tf.float32)

    def epoch(self, x: Any, y: Any, order: np.ndarray, batch_size: int) -> float:
        import tensorflow as tf

        xs, rows, values = x
        if "step" not in self.traced:
            signature = (
                tf.TensorSpec([None, len(self.layout.numeric)], tf.float32),
                tf.TensorSpec([None, None], tf.int64),
                tf.TensorSpec([None, None], tf.float32),
                tf.TensorSpec([None, *y.shape[1:]], y.dtype),
                tf.TensorSpec([None], tf.int64),
                tf.TensorSpec([], tf.int64),
            )
            self.traced["step"] = tf.function(
                self.loop, input_signature=signature, autograph=False
            ).get_concrete_function()
        at = tf.constant(np.asarray(order, dtype=np.int64))
        size = tf.constant(int(batch_size), tf.int64)
        return float(self.traced["step"](xs, rows, values, y, at, size))

    def prepare(self, x: Mapping[str, Any], y: Any) -> tuple[Any, Any]:
        """Before a training: the table from the model's variables, the optimizer as
        built with the model's learning rate; the sample as the step reads it."""
        import tensorflow as tf

        units = self.layout.units
        self.table.assign(tf.concat([tf.reshape(v, [-1, units]) for v in self.variables], 0))
        for var, value in zip(self.twin.variables, self.fresh, strict=True):
            var.assign(value)
        self.twin.learning_rate = float(self.model.optimizer.learning_rate)
        return design(self.layout, x), y

    def finish(self) -> None:
        """After a training: the table's rows back into the model's variables."""
        values = self.table.numpy()
        for var, (first, shape) in zip(self.variables, self.layout.variables, strict=True):
            rows = shape[0] if len(shape) == 2 else 1
            var.assign(values[first : first + rows].reshape(shape))


def _loss(head: Any) -> Any:
    """``loss(y, logits)``: the head's Keras loss (reduced over the batch as Keras does);
    a binary head's as the ops Keras runs for it, without its rank and dtype plumbing."""
    import tensorflow as tf

    if head.task == "binary":

        def binary(y: Any, logits: Any) -> Any:
            labels = tf.reshape(tf.cast(y, logits.dtype), tf.shape(logits))
            return tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
            )

        return binary
    keras_loss = head.keras_loss()
    return lambda y, logits: keras_loss(y, logits)


def light_arguments(
    trainer: Any,
    learner: Any,
    features: Sequence[Mapping[str, Any]],
    head: Any,
    *,
    policy: str,
    run_eagerly: bool,
) -> tuple[Layout, Any, Any] | None:
    """``light_fit``'s ``linear`` for a trainer's model (its layout, the head and the
    trainer's penalty strengths), or None: Keras' step (see the module)."""
    layout = layout_of(trainer.model, learner, features, policy=policy, run_eagerly=run_eagerly)
    return None if layout is None else (layout, head, trainer.strengths)
