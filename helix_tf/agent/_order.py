"""Reuse-aware order of a batch of trials: shared intermediates computed once, back to back.

The sampler proposes a batch of trials; the plan of each (``helix_tf.plan``, the
public API) says which nodes it would compute, by fingerprint, and what each
would cost. The batch runs greedily: next is the trial whose nodes, minus those
the trials before it in the batch computed, cost least; ties go to the trial
whose trainer the worker still keeps (below), then to the trial sharing most
with the one just run, then to the sampler's order. So a trial whose
preprocessing is stored runs first, trials sharing a new intermediate run right
after the one that computes it (while it is the newest entry, before any budget
could evict it), and a duplicate suggestion runs right after its twin (costing a
load).

Trainers. The trial worker keeps its last few built and traced Keras trainers
(:data:`helix_tf.components.trainers.TRAINERS`, least recently used dropped): a
training whose graph a kept trainer has (same learner class and structure, same
features; only the learning rate, epochs, batch size or the non-zero L1/L2 values
differ) skips building and tracing. :func:`trainer_shape` names that graph from a trial's overrides; the
order prefers a trial whose shape is among the ``kept`` shapes trained last.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Any

from helix_tf.components.trainers import RUN_TIME_PARAMS
from helix_tf.roles import NodeState

__all__ = ["compute_costs", "kept_after", "reuse_order", "trainer_shape"]


def compute_costs(plan: object) -> dict[str, float]:
    """What a plan (:class:`helix_tf.results.PlanResult`) would compute: fingerprint -> seconds."""
    return {
        d.fingerprint: float(d.compute_cost or 0.0)
        for d in getattr(plan, "nodes", ())
        if d.state == NodeState.COMPUTE
    }


def trainer_shape(overrides: Mapping[str, Any], learners: Collection[str]) -> str:
    """What a trial's trainers depend on: its overrides but the learners' run-time values.

    The learners' :data:`~helix_tf.components.trainers.RUN_TIME_PARAMS` (learning
    rate, epochs, batch size, L1 and L2) are fed to a kept trainer when it trains,
    so of each only whether it is 0 stays in the shape (whether a penalty term is in
    the graph). Two trials of one config with equal shapes train equal graphs on
    equal features (same preprocessing fingerprints), so a trainer built for one
    serves the other. ``learners``: the names of the config's train nodes (``-p
    learner.epochs=3`` is run-time; ``-p vocab.epochs=3`` would not be).

    >>> a = trainer_shape({"learner.l2": 0.1, "learner.learning_rate": 0.01}, ["learner"])
    >>> a == trainer_shape({"learner.l2": 0.3, "learner.learning_rate": 0.5}, ["learner"])
    True
    >>> a == trainer_shape({"learner.l2": 0.0, "learner.learning_rate": 0.01}, ["learner"])
    False
    """
    shape: dict[str, Any] = {}
    for key, value in overrides.items():
        node, _, param = key.rpartition(".")
        if node in learners and param in RUN_TIME_PARAMS:
            shape[key] = "0" if _is_zero(value) else "set"
        else:
            shape[key] = value
    return json.dumps(shape, sort_keys=True, default=repr)


def _is_zero(value: Any) -> bool:
    try:
        return float(value) == 0.0
    except (TypeError, ValueError):
        return False


def reuse_order(
    computes: Sequence[Mapping[str, float] | None],
    shapes: Sequence[Hashable] | None = None,
    *,
    kept: int = 4,
    recent: Sequence[Hashable] = (),
) -> list[int]:
    """The order (indices into ``computes``) to run a batch of trials in.

    ``computes[i]``: what trial ``i`` would compute (fingerprint -> estimated
    seconds), or None when it could not be planned (it runs last, in sampler order).
    ``shapes[i]``: its :func:`trainer_shape` (None: unknown); ``recent``: the shapes
    trained before this batch, oldest first; ``kept``: how many trainers the
    worker keeps.

    >>> a = {"prep1": 5.0, "fit-a": 1.0}
    >>> b = {"prep2": 5.0, "fit-b": 1.0}
    >>> c = {"prep1": 5.0, "fit-c": 1.0}
    >>> reuse_order([a, b, c])  # c right after a: prep1 is computed once, then loaded
    [0, 2, 1]
    >>> reuse_order([b, {"fit-d": 1.0}, b])  # stored prep first; the duplicate after its twin
    [1, 0, 2]
    >>> fits = [{"fit-a": 1.0}, {"fit-b": 1.0}, {"fit-c": 1.0}]
    >>> reuse_order(fits, ["x", "y", "z"], recent=["z"])  # z's trainer is kept: it goes first
    [2, 0, 1]
    """
    planned = [i for i, c in enumerate(computes) if c is not None]
    done: set[str] = set()
    last: set[str] = set()
    trained: list[Hashable] = [s for s in recent if s is not None][-kept:] if kept > 0 else []
    order: list[int] = []
    while planned:
        warm = set(trained)
        best = min(
            planned,
            key=lambda i: _rank(computes[i] or {}, i, done, last, shapes and shapes[i], warm),
        )
        planned.remove(best)
        order.append(best)
        last = set((computes[best] or {}).keys())
        done |= last
        trained = kept_after(trained, shapes[best] if shapes else None, kept)
    return order + [i for i, c in enumerate(computes) if c is None]


def kept_after(trained: Sequence[Hashable], shape: Hashable | None, kept: int) -> list[Hashable]:
    """The shapes whose trainers are kept, oldest first, after training ``shape``.

    As the trainer cache keeps them: the least recently used dropped beyond ``kept``.

    >>> kept_after(["a", "b", "c"], "a", 3)
    ['b', 'c', 'a']
    >>> kept_after(["a", "b", "c"], "d", 3)
    ['b', 'c', 'd']
    """
    if shape is None:
        return list(trained)
    return [*(s for s in trained if s != shape), shape][-kept:] if kept > 0 else []


def _rank(
    compute: Mapping[str, float],
    index: int,
    done: set[str],
    last: set[str],
    shape: Hashable | None,
    warm: set[Hashable],
) -> tuple[float, int, int, int]:
    """Cheapest new work first; then a kept trainer; then most shared with the last; then sampler."""
    new = sum(s for fp, s in compute.items() if fp not in done)
    return (
        round(new, 6),
        0 if shape is not None and shape in warm else 1,
        -len(last & compute.keys()),
        index,
    )
