"""Whether an approximate run is worth it: what its sample would save, from exact history.

A sample shrinks the work of the nodes it touches — the source, its features and
examples when it is placed at the source; training always — and nothing else
(the test split is never sampled, so prediction and evaluation cost the same).
When the exact run's last measurements say that shrinking would save less than
``Approx.min_saving_seconds``, the approximate run would cost about what the exact
one does and be less precise: the exact workflow runs instead, and the run says so.
Without an exact measurement of every such node, nothing is decided here.

Training is estimated by the rows' share (``fraction`` times a user's ``epochs_scale``),
not by its steps: a sample trains for the exact run's optimizer steps
(:mod:`helix_tf.approx.settings`), but in the light loop (~3x cheaper a step than
Keras' ``fit`` on census) and only until its loss stops falling, neither of which exact
history tells. Measured (session 10, load 5–8): census ×100 approximate training took
0.04–0.25 of the exact one's seconds against the estimate's 0.01, ×10 0.15–0.67
against 0.1. An estimate by steps (1.0) ran every approximate learner edit on stored
examples exact instead. Once a node has an approximate measurement, plans go by it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from helix_tf.approx.settings import PLACEMENTS
from helix_tf.roles import ROLE_SPECS, Role

__all__ = ["SAMPLED_ROLES", "approx_saving", "approximate_history"]

#: The roles whose work a sample shrinks, by where the sample is placed
#: (``RoleSpec.sampled_by``).
SAMPLED_ROLES: dict[str, tuple[Role, ...]] = {
    placement: tuple(spec.role for spec in ROLE_SPECS.values() if placement in spec.sampled_by)
    for placement in PLACEMENTS
}


def approx_saving(
    nodes: Iterable[tuple[str, str]],
    history: Mapping[str, Any],
    *,
    fraction: float,
    epochs_scale: float,
    placement: str,
) -> float | None:
    """Seconds of work a sample would save over the exact run; ``None`` when unknown.

    ``nodes``: (name, role) of the nodes the exact run would compute; ``history``:
    the last exact ``compute_seconds`` per node name.

    >>> class R:
    ...     def __init__(self, s): self.compute_seconds = s
    >>> approx_saving([("rows", "source"), ("m", "train"), ("e", "evaluate")],
    ...               {"rows": R(0.4), "m": R(0.6), "e": R(5.0)},
    ...               fraction=0.5, epochs_scale=1.0, placement="source")
    0.5
    >>> approx_saving([("m", "train")], {}, fraction=0.5, epochs_scale=1.0, placement="train")
    """
    roles = SAMPLED_ROLES[placement]
    saving = 0.0
    for name, role in nodes:
        if role not in roles:
            continue
        record = history.get(name)
        seconds = getattr(record, "compute_seconds", None)
        if seconds is None:
            return None
        shrink = fraction * epochs_scale if ROLE_SPECS[role].epochs_scaled else fraction
        saving += float(seconds) * (1.0 - shrink)
    return saving


def _shrink(role: str, *, fraction: float, epochs_scale: float, placement: str) -> float:
    """The share of a node's exact work its approximate run does (1: not sampled)."""
    if role not in SAMPLED_ROLES[placement]:
        return 1.0
    return fraction * epochs_scale if ROLE_SPECS[Role(role)].epochs_scaled else fraction


def approximate_history(
    nodes: Iterable[tuple[str, str]],
    exact: Mapping[str, Any],
    approximate: Mapping[str, Any],
    *,
    fraction: float,
    epochs_scale: float,
    placement: str,
) -> dict[str, Any]:
    """The compute measurements an approximate run's plan estimates its nodes by.

    Per node: its last approximate measurement where there is one (what a sampled
    run of it took, fixed costs included), else its last exact one scaled by the
    share of the work the sample leaves (the rule of :func:`approx_saving`). Planning
    an approximate run by exact measurements alone estimated it at the exact run's
    cost, so it never looked cheaper. ``nodes``: (name, role); ``exact``,
    ``approximate``: records with ``compute_seconds`` by node name (dataclasses).

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class R:
    ...     compute_seconds: float
    >>> h = approximate_history([("rows", "source"), ("m", "train"), ("e", "evaluate")],
    ...                         {"rows": R(0.4), "m": R(2.0), "e": R(0.2)}, {"rows": R(0.3)},
    ...                         fraction=0.25, epochs_scale=1.0, placement="train")
    >>> {k: v.compute_seconds for k, v in sorted(h.items())}
    {'e': 0.2, 'm': 0.5, 'rows': 0.3}
    """
    out: dict[str, Any] = {}
    for name, role in nodes:
        if name in approximate:
            out[name] = approximate[name]
            continue
        record = exact.get(name)
        seconds = getattr(record, "compute_seconds", None)
        if record is None or seconds is None:
            continue
        share = _shrink(role, fraction=fraction, epochs_scale=epochs_scale, placement=placement)
        out[name] = dataclasses.replace(record, compute_seconds=float(seconds) * share)
    return out
