"""The cost model: compute and load seconds per node, learned from history.

c_i is the last measured compute time of the node with that name in this
workflow (scaled by the ratio of input rows when the data size changed);
l_i = bytes / read throughput + per-artifact latency, both measured on earlier
loads. Nodes never measured get conservative defaults by role, so an unknown
operator is assumed expensive to compute (which favours loading what exists).
Before enough loads are measured, the latency defaults by where the store is: a
local disk answers in well under a millisecond (measured: 0.07-0.2 ms per entry of
a few KB on census), an object store in tens of milliseconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from helix_tf.roles import ROLE_SPECS, Role

__all__ = ["CostModel", "DEFAULT_COMPUTE_SECONDS", "NodeCosts", "default_load_latency"]

#: Seconds assumed for a node never measured, by role (``RoleSpec.default_seconds``).
DEFAULT_COMPUTE_SECONDS = {role: spec.default_seconds for role, spec in ROLE_SPECS.items()}
#: Fixed cost of loading a model: Keras must deserialise it (TensorFlow import aside).
MODEL_LOAD_SECONDS = ROLE_SPECS[Role.TRAIN].load_overhead_seconds
#: Per-entry load latency assumed before five loads are measured, local disk / remote.
LOCAL_LOAD_LATENCY = 0.001
REMOTE_LOAD_LATENCY = 0.01


def default_load_latency(is_local: bool) -> float:
    """The load latency a plan assumes until the store's loads have been measured.

    A local store's default sits above what reads take (0.07-0.2 ms measured) so a
    tiny entry still counts something; a remote one's is an object store's round trip.
    """
    return LOCAL_LOAD_LATENCY if is_local else REMOTE_LOAD_LATENCY


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NodeCosts:
    compute: float
    load: float | None
    measured: bool  # whether compute comes from history


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CostModel:
    """Costs for one plan.

    Parameters
    ----------
    history:
        Last compute measurement per node name (from the metadata database).
    throughput:
        Store read throughput in bytes per second.
    latency:
        Per-artifact load latency in seconds.
    """

    history: Mapping[str, Any]
    throughput: float = 200e6
    latency: float = 0.005

    def compute_cost(self, name: str, role: str) -> tuple[float, bool]:
        rec = self.history.get(name)
        if rec is None or rec.compute_seconds is None:
            return DEFAULT_COMPUTE_SECONDS.get(role, 1.0), False
        return max(float(rec.compute_seconds), 1e-6), True

    def load_cost(self, role: str, nbytes: int | None) -> float:
        cost = self.latency + (nbytes or 0) / max(self.throughput, 1.0)
        spec = ROLE_SPECS.get(role)
        return cost + (spec.load_overhead_seconds if spec is not None else 0.0)

    def costs(self, name: str, role: str, stored_bytes: int | None, loadable: bool) -> NodeCosts:
        compute, measured = self.compute_cost(name, role)
        return NodeCosts(
            compute=compute,
            load=self.load_cost(role, stored_bytes) if loadable else None,
            measured=measured,
        )
