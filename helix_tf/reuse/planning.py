"""From a compiled DAG, what is stored, and the cost model, to a reuse plan with reasons.

Wraps :func:`helix_tf.reuse.plan.solve_reuse_plan` (the max-flow) with the
human-readable ``reason`` per decision ("changed: learner.l1 0.01 → 0.003",
"unchanged: loading 2.1 MB (0.02 s) beats recomputing (3.4 s)").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from helix_tf.compiler.diff import describe_change
from helix_tf.compiler.graph import CompiledWorkflow
from helix_tf.results import NodeDecision
from helix_tf.reuse.costs import CostModel
from helix_tf.reuse.plan import PlanNode, solve_reuse_plan

__all__ = ["plan_reuse", "describe_change", "human_bytes"]


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _unavailable_ancestors(
    name: str, compiled: CompiledWorkflow, states: Mapping[str, str]
) -> set[str]:
    """Ancestors that would have to be computed too if ``name`` were recomputed."""
    by_name = compiled.by_name
    out: set[str] = set()
    stack = list(by_name[name].inputs)
    while stack:
        a = stack.pop()
        if a in out or states.get(a) != "prune":
            continue
        out.add(a)
        stack.extend(by_name[a].inputs)
    return out


def plan_reuse(
    compiled: CompiledWorkflow,
    *,
    stored: Mapping[str, int | None],
    costs: CostModel,
    previous: Mapping[str, Any] | None = None,
) -> list[NodeDecision]:
    """Decide compute / load / prune for every node.

    Parameters
    ----------
    stored:
        Nodes whose fingerprint has a valid stored artifact, with its bytes.
    previous:
        The previous version's DAG (``CompiledWorkflow.to_dict()``), for reasons.
    """
    plan_nodes = []
    node_costs = {}
    for n in compiled.nodes:
        c = costs.costs(n.name, n.role, stored.get(n.name), n.name in stored)
        node_costs[n.name] = c
        plan_nodes.append(
            PlanNode(
                name=n.name,
                inputs=n.inputs,
                compute_cost=c.compute,
                load_cost=c.load,
                output=n.output,
            )
        )
    plan = solve_reuse_plan(plan_nodes)
    prev_nodes = {p["name"]: p for p in (previous or {}).get("nodes", [])}
    consumers = compiled.consumers()
    decisions = []
    for n in compiled.nodes:
        state = plan.states[n.name]
        c = node_costs[n.name]
        old = prev_nodes.get(n.name)
        volatile = n.extra.get("volatile") if isinstance(n.extra, dict) else None
        if state == "compute" and volatile:
            reason = f"never reused, recomputed every run: {volatile[0]}"
        elif state == "compute":
            if n.name in stored:
                reason = (
                    f"recomputing ({c.compute:.2f} s) beats loading "
                    f"{human_bytes(stored[n.name])} ({c.load:.2f} s)"
                )
            elif old is not None and old.get("fingerprint") == n.fingerprint:
                reason = "unchanged, but no valid stored result"
            else:
                changed_inputs = [
                    i
                    for i in n.inputs
                    if prev_nodes.get(i, {}).get("fingerprint") != compiled.node(i).fingerprint
                ]
                reason = describe_change(n.name, n.to_dict(), old, changed_inputs)
        elif state == "load":
            # Recomputing would also need every input that is not otherwise available.
            needed = _unavailable_ancestors(n.name, compiled, plan.states)
            upstream = sum(node_costs[a].compute for a in needed)
            recompute = f"{c.compute + upstream:.2f} s" + (
                f", with {len(needed)} upstream node(s)" if needed else ""
            )
            reason = (
                f"unchanged: loading {human_bytes(stored.get(n.name))} ({c.load:.2f} s) "
                f"beats recomputing ({recompute})"
            )
        else:
            users = consumers[n.name]
            if not users and not n.output:
                reason = "pruned: reaches no output (dead operator)"
            elif all(plan.states[u] != "compute" for u in users):
                reason = "pruned: nothing downstream needs it"
            else:
                reason = "pruned"
        decisions.append(
            NodeDecision(
                name=n.name,
                kind=n.kind,
                state=state,
                compute_cost=round(c.compute, 6),
                load_cost=None if c.load is None else round(c.load, 6),
                reason=reason,
                fingerprint=n.fingerprint,
            )
        )
    return decisions
