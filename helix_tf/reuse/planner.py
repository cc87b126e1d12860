"""The store-aware planner: a compiled DAG, what is stored and the cost model → decisions.

:func:`plan_reuse` turns a :class:`~helix_tf.compiler.graph.CompiledWorkflow`
into costs per node (:mod:`helix_tf.reuse.costs`), lets the exact solver
(:func:`helix_tf.reuse.solver.solve_reuse_plan`, one min-cut over plain data)
choose the states, and gives every decision its human-readable ``reason``
("changed: learner.l1 0.01 → 0.003", "unchanged: loading 2.1 MB (0.02 s) beats
recomputing (3.4 s)"). Formerly ``reuse/planning.py`` (that name still imports).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from helix_tf.compiler.diff import change_details, describe_change
from helix_tf.compiler.graph import CompiledNode, CompiledWorkflow
from helix_tf.results import NodeDecision
from helix_tf.reuse.costs import CostModel, NodeCosts
from helix_tf.reuse.solver import PlanNode, solve_reuse_plan
from helix_tf.roles import NodeState

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
        if a in out or states.get(a) != NodeState.PRUNE:
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
    node_costs = {
        n.name: costs.costs(n.name, n.role, stored.get(n.name), n.name in stored)
        for n in compiled.nodes
    }
    plan = solve_reuse_plan(
        [
            PlanNode(
                name=n.name,
                inputs=n.inputs,
                compute_cost=node_costs[n.name].compute,
                load_cost=node_costs[n.name].load,
                output=n.output,
            )
            for n in compiled.nodes
        ]
    )
    reasons = _Reasons(compiled, plan.states, node_costs, stored, previous)
    return [
        NodeDecision(
            name=n.name,
            kind=n.kind,
            state=plan.states[n.name],
            compute_cost=round(node_costs[n.name].compute, 6),
            load_cost=_rounded(node_costs[n.name].load),
            reason=reasons.of(n),
            fingerprint=n.fingerprint,
            changed=reasons.changed(n),
        )
        for n in compiled.nodes
    ]


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 6)


class _Reasons:
    """The human-readable reason of each node's state in a plan."""

    def __init__(
        self,
        compiled: CompiledWorkflow,
        states: Mapping[str, str],
        costs: Mapping[str, NodeCosts],
        stored: Mapping[str, int | None],
        previous: Mapping[str, Any] | None,
    ) -> None:
        self.compiled = compiled
        self.states = states
        self.costs = costs
        self.stored = stored
        self.previous = {p["name"]: p for p in (previous or {}).get("nodes", [])}
        self.consumers = compiled.consumers()
        self._by_state = {
            NodeState.COMPUTE: self._computed,
            NodeState.LOAD: self._loaded,
            NodeState.PRUNE: self._pruned,
        }

    def of(self, node: CompiledNode) -> str:
        return self._by_state[NodeState(self.states[node.name])](node)

    def changed(self, n: CompiledNode) -> tuple[str, ...]:
        """How ``n`` itself differs from the previous version (``NodeDecision.changed``)."""
        if not self.previous:
            return ()
        old = self.previous.get(n.name)
        if old is None:
            return ("new node",)
        if old.get("fingerprint") == n.fingerprint:
            return ()
        inputs = self._changed_inputs(n)
        own = [
            d
            for d in change_details(n.name, n.to_dict(), old, inputs)
            if not d.startswith("input changed:")
        ]
        return tuple(own or ([] if inputs else ["data or implementation version"]))

    def _changed_inputs(self, n: CompiledNode) -> list[str]:
        return [
            i
            for i in n.inputs
            if self.previous.get(i, {}).get("fingerprint") != self.compiled.node(i).fingerprint
        ]

    def _computed(self, n: CompiledNode) -> str:
        c = self.costs[n.name]
        old = self.previous.get(n.name)
        volatile = n.facts.get("volatile") if isinstance(n.facts, dict) else None
        if volatile:
            return f"never reused, recomputed every run: {volatile[0]}"
        if n.name in self.stored:
            return (
                f"recomputing ({c.compute:.2f} s) beats loading "
                f"{human_bytes(self.stored[n.name])} ({c.load:.2f} s)"
            )
        if old is not None and old.get("fingerprint") == n.fingerprint:
            return "unchanged, but no valid stored result"
        return describe_change(n.name, n.to_dict(), old, self._changed_inputs(n))

    def _loaded(self, n: CompiledNode) -> str:
        c = self.costs[n.name]
        # Recomputing would also need every input that is not otherwise available.
        needed = _unavailable_ancestors(n.name, self.compiled, self.states)
        upstream = sum(self.costs[a].compute for a in needed)
        recompute = f"{c.compute + upstream:.2f} s" + (
            f", with {len(needed)} upstream node(s)" if needed else ""
        )
        old = self.previous.get(n.name)
        # Stored, but not the previous version's: the config is back at an earlier one.
        same = not self.previous or (old is not None and old.get("fingerprint") == n.fingerprint)
        return (
            f"{'unchanged' if same else 'stored by an earlier version'}: loading "
            f"{human_bytes(self.stored.get(n.name))} ({c.load:.2f} s) beats recomputing "
            f"({recompute})"
        )

    def _pruned(self, n: CompiledNode) -> str:
        users = self.consumers[n.name]
        if not users and not n.output:
            return "pruned: reaches no output (dead operator)"
        if all(self.states[u] != NodeState.COMPUTE for u in users):
            return "pruned: nothing downstream needs it"
        return "pruned"
