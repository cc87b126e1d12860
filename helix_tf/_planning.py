"""Planning one session's run: stored entries, the cost model, max-flow, and why.

The plan step of :func:`helix_tf.api.run` and all of :func:`helix_tf.api.plan`:
what is stored for each node, what earlier runs measured, the previous version of
the same kind (the reasons compare with it), and the max-flow plan
(:func:`helix_tf.reuse.planner.plan_reuse`) with zero-weight pruning said in it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from helix_tf._recording import pruned_phrase
from helix_tf._session import Session
from helix_tf.compiler.graph import CompiledWorkflow
from helix_tf.results import NodeDecision
from helix_tf.reuse.costs import CostModel, default_load_latency
from helix_tf.reuse.planner import plan_reuse
from helix_tf.roles import NodeState, Role
from helix_tf.validation import is_validation_dag

__all__ = ["ancestors", "plan_history", "plan_session"]


def plan_session(
    session: Session, *, exclude: frozenset[str] = frozenset(), baseline: int | None = None
) -> tuple[list[NodeDecision], dict[str, Any], CostModel]:
    """Plan ``session``'s workflow; fingerprints in ``exclude`` count as not stored.

    The reasons (and ``NodeDecision.changed``) compare with recorded version ``baseline``
    of the workflow; None: the latest other version of the same kind.
    """
    compiled = session.compiled
    validation = is_validation_dag(compiled.to_dict())
    manifests = {}
    for n in compiled.nodes:
        m = None if n.fingerprint in exclude else session.store.lookup(n.fingerprint)
        if m is not None:
            manifests[n.name] = m
    history = plan_history(session)
    throughput, latency = session.metadata.load_throughput(
        default_latency=default_load_latency(session.store.is_local)
    )
    costs = CostModel(history=history, throughput=throughput, latency=latency)
    if baseline is not None:
        previous: dict[str, Any] | None = session.metadata.version(compiled.name, baseline).dag
    else:  # the latest other version of the same kind (exact or approximate)
        same_kind = [
            v.dag
            for v in session.metadata.versions(compiled.name, user=session.baseline_user)
            if (v.dag.get("approx") is None) == (compiled.approx is None)
            and is_validation_dag(v.dag) == validation
            and v.dag.get("digest") != compiled.digest
        ]
        previous = same_kind[-1] if same_kind else None
    decisions = plan_reuse(
        compiled,
        stored={name: m.bytes for name, m in manifests.items()},
        costs=costs,
        previous=previous,
    )
    # Zero-weight features of stored models are pruned from inference: say so in the plan.
    for i, d in enumerate(decisions):
        node = compiled.node(d.name)
        if node.role != Role.PREDICT or d.state != NodeState.COMPUTE:
            continue
        model = manifests.get(node.inputs[0])
        zero = model.meta.get("zero") if model is not None else None
        if zero:
            decisions[i] = dataclasses.replace(
                d, reason=f"{d.reason}; {pruned_phrase(zero, d.name, compiled)}"
            )
    return decisions, manifests, costs


def plan_history(session: Session) -> dict[str, Any]:
    """The compute measurements a plan estimates by: of its own kind of run.

    An exact plan takes each node's last exact measurement (else its last of any
    kind); an approximate one its last approximate measurement, else the exact one
    scaled by the sample (:func:`helix_tf.approx.worth.approximate_history`). Before,
    both took the newest of either kind, so an approximate run was estimated at the
    exact run's cost (and an exact run after an approximate one at the sample's).
    """
    from helix_tf.approx.worth import approximate_history

    compiled, meta = session.compiled, session.metadata
    exact = meta.compute_history(compiled.name, approx=False)
    sampled = meta.compute_history(compiled.name, approx=True)
    if compiled.approx is None:
        return {**sampled, **exact}
    settings = compiled.approx
    return approximate_history(
        [(n.name, n.role) for n in compiled.nodes],
        exact,
        sampled,
        fraction=float(settings.get("sample", 1.0)),
        # The rows' share (approx.worth): the compiled scale also carries the exact run's
        # steps over the sample (1 / sample), which the estimate leaves out.
        epochs_scale=float(settings.get("epochs_scale", 1.0)) * float(settings.get("sample", 1.0)),
        placement=str(settings.get("placement", "source")),
    )


def ancestors(compiled: CompiledWorkflow) -> dict[str, set[str]]:
    """Every node's ancestors (by name), in the workflow's topological order."""
    out: dict[str, set[str]] = {}
    for n in compiled.nodes:  # topological order
        acc: set[str] = set()
        for i in n.inputs:
            acc.add(i)
            acc |= out[i]
        out[n.name] = acc
    return out
