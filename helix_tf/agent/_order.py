"""Reuse-aware order of a batch of trials: shared intermediates computed once, back to back.

The sampler proposes a batch of trials; the plan of each (``helix_tf.plan``, the
public API) says which nodes it would compute, by fingerprint, and what each
would cost. The batch runs greedily: next is the trial whose nodes, minus those
the trials before it in the batch computed, cost least; ties go to the trial
sharing most with the one just run, then to the sampler's order. So a trial
whose preprocessing is stored runs first, trials sharing a new intermediate run
right after the one that computes it (while it is the newest entry, before any
budget could evict it), and a duplicate suggestion runs right after its twin
(costing a load).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from helix_tf.roles import NodeState

__all__ = ["compute_costs", "reuse_order"]


def compute_costs(plan: object) -> dict[str, float]:
    """What a plan (:class:`helix_tf.results.PlanResult`) would compute: fingerprint -> seconds."""
    return {
        d.fingerprint: float(d.compute_cost or 0.0)
        for d in getattr(plan, "nodes", ())
        if d.state == NodeState.COMPUTE
    }


def reuse_order(computes: Sequence[Mapping[str, float] | None]) -> list[int]:
    """The order (indices into ``computes``) to run a batch of trials in.

    ``computes[i]``: what trial ``i`` would compute (fingerprint -> estimated
    seconds), or None when it could not be planned (it runs last, in sampler order).

    >>> a = {"prep1": 5.0, "fit-a": 1.0}
    >>> b = {"prep2": 5.0, "fit-b": 1.0}
    >>> c = {"prep1": 5.0, "fit-c": 1.0}
    >>> reuse_order([a, b, c])  # c right after a: prep1 is computed once, then loaded
    [0, 2, 1]
    >>> reuse_order([b, {"fit-d": 1.0}, b])  # stored prep first; the duplicate after its twin
    [1, 0, 2]
    """
    planned = [i for i, c in enumerate(computes) if c is not None]
    done: set[str] = set()
    last: set[str] = set()
    order: list[int] = []
    while planned:
        best = min(planned, key=lambda i: _rank(computes[i] or {}, i, done, last))
        planned.remove(best)
        order.append(best)
        last = set((computes[best] or {}).keys())
        done |= last
    return order + [i for i, c in enumerate(computes) if c is None]


def _rank(
    compute: Mapping[str, float], index: int, done: set[str], last: set[str]
) -> tuple[float, int, int]:
    """Cheapest new work first; then most shared with the trial just run; then sampler order."""
    new = sum(s for fp, s in compute.items() if fp not in done)
    return (round(new, 6), -len(last & compute.keys()), index)
