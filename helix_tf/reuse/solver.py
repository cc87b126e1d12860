"""The exact reuse-plan solver: compute, load or prune every node, with one min-cut.

Plain functions over plain data (:class:`PlanNode`): no compiled DAG, store or
cost model here; :mod:`helix_tf.reuse.planner` builds the input and explains the
result. Formerly ``reuse/plan.py`` (that name still imports).

Every node of the workflow DAG gets one state: **compute** (run the operator),
**load** (read a materialized artifact with the node's fingerprint; only possible
when ``load_cost`` is not ``None``) or **prune** (neither). A computed node needs
all its inputs *available* (computed or loaded) and every output node must be
available. Among the valid assignments we want the cheapest one, where the cost
is the sum of the compute costs of computed nodes plus the load costs of loaded
nodes (DESIGN.md §4).

The reduction
-------------
The problem is a minimum-weight closure, so a single s–t min-cut solves it
exactly. Each node ``i`` has two binary variables, ``a_i`` (available) and
``b_i`` (computed), with the constraints

* ``b_i ⇒ a_i`` (a computed node is available),
* ``b_i ⇒ a_p`` for every input ``p`` of ``i`` (computing needs the inputs),
* ``a_o = 1`` for every output ``o``,
* ``a_i ⇒ b_i`` when ``i`` cannot be loaded (available means computed),

and the objective ``l_i·a_i + (c_i − l_i)·b_i`` for a loadable node and
``c_i·b_i`` otherwise. The state is read back as: ``b_i`` → compute; ``a_i`` and
not ``b_i`` → load; not ``a_i`` → prune.

The flow network has a source ``s``, a sink ``t`` and one vertex per variable.
A variable with positive cost ``w`` gets an arc ``v → t`` of capacity ``w``; one
with negative cost ``−p`` gets an arc ``s → v`` of capacity ``p`` (and ``−p`` is
added to a constant); every implication ``u ⇒ v`` is an arc ``u → v`` of
"infinite" capacity, and a variable forced true hangs off the source by an
infinite arc. A finite s–t cut with source side ``S`` corresponds exactly to the
assignment "``v`` is true iff ``v ∈ S``"; its capacity is the assignment's cost
minus the constant. "Infinite" is ``1 +`` the sum of all finite capacities: the
all-compute plan is always valid and its cut is finite, so no minimum cut ever
crosses an infinite arc.

Forced variables are attached through a single hub vertex (``s → hub → a_o``)
so that the total capacity leaving the source stays below two "infinities",
whatever the number of outputs; this keeps every flow value inside ``int64``.

Units and ties
--------------
OR-Tools' ``SimpleMaxFlow`` works on integer capacities, so costs (seconds) are
rounded to whole **microseconds** before solving: the plan is exactly optimal
for the rounded costs, and within ``n/2`` µs of the optimum for the real ones.
Zero costs are allowed (they simply produce no arc). The reported
:attr:`ReusePlan.cost` is the sum of the original float costs of the chosen
states.

The cut read back is the *minimal* source side (the vertices reachable from
``s`` in the residual graph), which is the unique minimum cut contained in every
other one. The plan is therefore fully deterministic: among all optimal plans it
is the one with the fewest true variables, so on a tie loading wins over
computing and pruning wins over both.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from ortools.graph.python import max_flow

from helix_tf.errors import PlanError, did_you_mean
from helix_tf.roles import NodeState

__all__ = [
    "COMPUTE",
    "LOAD",
    "PRUNE",
    "PlanNode",
    "ReusePlan",
    "available",
    "brute_force_plan",
    "solve_reuse_plan",
]

logger = logging.getLogger(__name__)

# The states under their old names (NodeState is defined in helix_tf.roles).
COMPUTE: Final = NodeState.COMPUTE
LOAD: Final = NodeState.LOAD
PRUNE: Final = NodeState.PRUNE

#: Costs are rounded to integer multiples of this many seconds (one microsecond).
RESOLUTION_S: Final = 1e-6

#: Largest node count :func:`brute_force_plan` accepts (3**12 = 531,441 assignments).
BRUTE_FORCE_MAX_NODES: Final = 12

# The sum of all finite capacities must leave room for 2 * (1 + sum) in int64.
_MAX_TOTAL_UNITS: Final = 2**61


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanNode:
    """One node of the DAG, as the planner sees it.

    Parameters
    ----------
    name : str
        Unique node name.
    inputs : tuple of str
        Names of the nodes this node reads.
    compute_cost : float
        Seconds to compute the node, ``>= 0``.
    load_cost : float or None
        Seconds to load a stored artifact of the node, ``>= 0``; ``None`` when no
        valid artifact exists, so the node cannot be loaded.
    output : bool, default False
        Whether the node must be available (computed or loaded).
    """

    name: str
    inputs: tuple[str, ...]
    compute_cost: float
    load_cost: float | None
    output: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ReusePlan:
    """The state of every node and the plan's total cost.

    Parameters
    ----------
    states : dict of str to str
        Node name to ``"compute"``, ``"load"`` or ``"prune"``, in the order the
        nodes were given.
    cost : float
        Seconds: compute costs of computed nodes plus load costs of loaded nodes.
    """

    states: dict[str, NodeState]
    cost: float


def available(states: Mapping[str, str]) -> set[str]:
    """Names of the nodes a plan makes available (computed or loaded).

    Parameters
    ----------
    states : mapping of str to str
        Node name to state, e.g. :attr:`ReusePlan.states`.

    Returns
    -------
    set of str
        The names whose state is ``"compute"`` or ``"load"``.

    Examples
    --------
    >>> sorted(available({"a": "load", "b": "compute", "c": "prune"}))
    ['a', 'b']
    """
    return {name for name, state in states.items() if state != PRUNE}


def solve_reuse_plan(nodes: Sequence[PlanNode]) -> ReusePlan:
    """Find the cheapest compute/load/prune assignment with one min-cut.

    See the module docstring for the reduction. Costs are rounded to whole
    microseconds for the solver; among equally cheap plans the one with the
    fewest computed and available nodes is returned, so the result is
    deterministic.

    Parameters
    ----------
    nodes : sequence of PlanNode
        The DAG, in any order; names must be unique, inputs must name nodes of
        the sequence and there must be no cycle.

    Returns
    -------
    ReusePlan
        The states, in the order of ``nodes``, and the plan's cost in seconds.

    Raises
    ------
    PlanError
        If names repeat, an input names an unknown node, a cost is negative or
        not finite, the graph has a cycle, or the costs are too large to solve.

    Examples
    --------
    An unchanged rerun: the output's artifact is cheap to load, so nothing is
    computed and its input is pruned.

    >>> nodes = [
    ...     PlanNode(name="rows", inputs=(), compute_cost=10.0, load_cost=2.0),
    ...     PlanNode(name="model", inputs=("rows",), compute_cost=60.0, load_cost=0.5,
    ...              output=True),
    ... ]
    >>> solve_reuse_plan(nodes)
    ReusePlan(states={'rows': 'prune', 'model': 'load'}, cost=0.5)

    After an edit invalidated the model, it is recomputed from loaded rows.

    >>> nodes[1] = PlanNode(name="model", inputs=("rows",), compute_cost=60.0,
    ...                     load_cost=None, output=True)
    >>> solve_reuse_plan(nodes)
    ReusePlan(states={'rows': 'load', 'model': 'compute'}, cost=62.0)
    """
    started = time.perf_counter()
    graph = _validate(nodes)
    if graph.n == 0:
        return ReusePlan(states={}, cost=0.0)
    network = _Network.of(graph)
    is_available, is_computed = network.min_cut()
    is_loaded = is_available & ~is_computed
    state_codes = np.where(is_computed, 2, np.where(is_loaded, 1, 0))
    plan = _make_plan(nodes, state_codes)
    logger.debug(
        "reuse plan: %d nodes, %d arcs, %d compute, %d load, %d prune, %.6f s, solved in %.3f s",
        graph.n,
        len(network.tails),
        int(is_computed.sum()),
        int(is_loaded.sum()),
        graph.n - int(is_available.sum()),
        plan.cost,
        time.perf_counter() - started,
    )
    return plan


@dataclass(frozen=True, slots=True, kw_only=True)
class _Network:
    """The flow network of the reduction (module docstring): arcs as parallel arrays.

    Vertices: s = 0, t = 1, the hub = 2, then a_0..a_{n-1}, then b_0..b_{n-1}.
    """

    graph: _Graph
    tails: np.ndarray
    heads: np.ndarray
    caps: np.ndarray
    #: The sum of the negative costs (moved onto arcs from the source).
    constant: int

    @classmethod
    def of(cls, graph: _Graph) -> _Network:
        n = graph.n
        source, sink, hub = 0, 1, 2
        a = np.arange(3, 3 + n, dtype=np.int32)
        b = a + np.int32(n)
        c_us, l_us = graph.compute_units, graph.load_units  # l_us: 0 where not loadable

        # Finite arcs: the objective.
        w_b = c_us - l_us
        a_pos = l_us > 0
        b_pos = w_b > 0
        b_neg = w_b < 0
        finite_tails = [a[a_pos], b[b_pos], np.full(int(b_neg.sum()), source, dtype=np.int32)]
        finite_heads = [
            np.full(int(a_pos.sum()), sink, dtype=np.int32),
            np.full(int(b_pos.sum()), sink, dtype=np.int32),
            b[b_neg],
        ]
        finite_caps = [l_us[a_pos], w_b[b_pos], -w_b[b_neg]]
        infinity = sum(int(cap.sum()) for cap in finite_caps) + 1

        # Infinite arcs: the implications and the forced outputs.
        outputs = graph.outputs
        not_loadable = ~graph.loadable
        inf_tails = [b, b[graph.edge_child], a[not_loadable], np.full(int(outputs.sum()), hub)]
        inf_heads = [a, a[graph.edge_parent], b[not_loadable], a[outputs]]
        if outputs.any():
            inf_tails.append(np.array([source]))
            inf_heads.append(np.array([hub]))

        n_inf = sum(len(t) for t in inf_tails)
        caps = np.concatenate([*finite_caps, np.full(n_inf, infinity, dtype=np.int64)])
        return cls(
            graph=graph,
            tails=np.concatenate(finite_tails + inf_tails).astype(np.int32, copy=False),
            heads=np.concatenate(finite_heads + inf_heads).astype(np.int32, copy=False),
            caps=caps.astype(np.int64, copy=False),
            constant=int(w_b[b_neg].sum()),
        )

    def min_cut(self) -> tuple[np.ndarray, np.ndarray]:
        """Solve; return (available, computed) per node: the minimal source side of the cut."""
        n = self.graph.n
        solver = max_flow.SimpleMaxFlow()
        solver.add_arcs_with_capacity(self.tails, self.heads, self.caps)
        status = solver.solve(0, 1)
        if status != solver.OPTIMAL:
            raise PlanError(
                f"the max-flow solver failed with status {status!r} on {n} nodes and "
                f"{len(self.tails)} arcs; this is a bug in helix_tf, please report it"
            )
        side = np.zeros(3 + 2 * n, dtype=bool)
        side[np.asarray(solver.get_source_side_min_cut(), dtype=np.int64)] = True
        is_available = side[3 : 3 + n]
        is_computed = side[3 + n :]
        is_loaded = is_available & ~is_computed
        plan_units = int(self.graph.compute_units[is_computed].sum()) + int(
            self.graph.load_units[is_loaded].sum()
        )
        if plan_units != solver.optimal_flow() + self.constant:
            raise PlanError(
                f"internal error: the plan costs {plan_units} µs but the min cut is "
                f"{solver.optimal_flow() + self.constant} µs; this is a bug in helix_tf, "
                "please report it"
            )
        return is_available, is_computed


def brute_force_plan(nodes: Sequence[PlanNode]) -> ReusePlan:
    """Find the cheapest plan by trying all 3ⁿ assignments (for tests).

    Costs are compared in whole microseconds, like :func:`solve_reuse_plan`, and
    ties are broken the same way (fewest computed plus available nodes), so on
    valid input both functions return the same plan.

    Parameters
    ----------
    nodes : sequence of PlanNode
        At most 12 nodes, validated like :func:`solve_reuse_plan`.

    Returns
    -------
    ReusePlan
        The optimal states, in the order of ``nodes``, and their cost.

    Raises
    ------
    PlanError
        If there are more than 12 nodes or the input is invalid.

    Examples
    --------
    >>> brute_force_plan([PlanNode(name="x", inputs=(), compute_cost=1.0, load_cost=None)])
    ReusePlan(states={'x': 'prune'}, cost=0.0)
    """
    n = len(nodes)
    if n > BRUTE_FORCE_MAX_NODES:
        raise PlanError(
            f"brute_force_plan tries 3**n assignments and accepts at most "
            f"{BRUTE_FORCE_MAX_NODES} nodes, but got n={n}; use solve_reuse_plan instead"
        )
    graph = _validate(nodes)
    if n == 0:
        return ReusePlan(states={}, cost=0.0)

    # Row k, column i: the state of node i in assignment k (0 prune, 1 load, 2 compute).
    codes = np.arange(3**n, dtype=np.int64)
    states = (codes[:, None] // (3 ** np.arange(n, dtype=np.int64))[None, :]) % 3
    valid = ~np.any((states == 1) & ~graph.loadable[None, :], axis=1)
    valid &= np.all(states[:, graph.outputs] > 0, axis=1)
    if len(graph.edge_child):
        computed_child = states[:, graph.edge_child] == 2
        pruned_parent = states[:, graph.edge_parent] == 0
        valid &= ~np.any(computed_child & pruned_parent, axis=1)

    cost = np.where(states == 2, graph.compute_units, np.where(states == 1, graph.load_units, 0))
    cost = cost.sum(axis=1)
    true_vars = states.sum(axis=1)  # load: a; compute: a and b
    candidates = np.flatnonzero(valid)
    best = candidates[np.lexsort((true_vars[candidates], cost[candidates]))[0]]
    return _make_plan(nodes, states[best])


@dataclass(frozen=True, slots=True, kw_only=True)
class _Graph:
    """Validated planner input as arrays (costs in microseconds)."""

    n: int
    compute_units: np.ndarray
    load_units: np.ndarray
    loadable: np.ndarray
    outputs: np.ndarray
    edge_child: np.ndarray
    edge_parent: np.ndarray


def _validate(nodes: Sequence[PlanNode]) -> _Graph:
    """Check names, inputs, costs and acyclicity; return the graph as arrays."""
    problems: list[str] = []
    index: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if not isinstance(node, PlanNode):
            problems.append(f"item {i} is a {type(node).__name__}, expected a PlanNode")
            continue
        if node.name in index:
            problems.append(
                f"duplicate node name {node.name!r} (positions {index[node.name]} and {i}); "
                "every node needs a unique name"
            )
        else:
            index[node.name] = i
        _check_cost(node.name, "compute_cost", node.compute_cost, problems)
        if node.load_cost is not None:
            _check_cost(node.name, "load_cost", node.load_cost, problems)
        if isinstance(node.inputs, str):
            problems.append(
                f"node {node.name!r} has inputs={node.inputs!r}, a string; expected a tuple of "
                f"node names, e.g. ({node.inputs!r},)"
            )
    if problems:
        raise PlanError(_join(problems))

    edge_child: list[int] = []
    edge_parent: list[int] = []
    for i, node in enumerate(nodes):
        for name in node.inputs:
            j = index.get(name)
            if j is None:
                problems.append(
                    f"node {node.name!r} reads unknown input {name!r}{did_you_mean(name, index)}; "
                    "every input must name a node of the plan"
                )
            else:
                edge_child.append(i)
                edge_parent.append(j)
    if problems:
        raise PlanError(_join(problems))

    n = len(nodes)
    cycle = _find_cycle(n, edge_child, edge_parent)
    if cycle:
        path = " -> ".join(repr(nodes[i].name) for i in cycle)
        raise PlanError(
            f"the graph has a cycle: {path}; a reuse plan needs a DAG, so remove one of "
            "these inputs"
        )

    compute = np.array([node.compute_cost for node in nodes], dtype=np.float64)
    loadable = np.array([node.load_cost is not None for node in nodes], dtype=bool)
    load = np.array(
        [0.0 if node.load_cost is None else node.load_cost for node in nodes], dtype=np.float64
    )
    total_units = (float(compute.sum()) + float(load.sum())) / RESOLUTION_S
    if total_units >= _MAX_TOTAL_UNITS:
        raise PlanError(
            f"the costs add up to {total_units * RESOLUTION_S:.3g} s, more than the "
            f"{_MAX_TOTAL_UNITS * RESOLUTION_S:.3g} s the planner can represent in "
            "microseconds; costs must be in seconds"
        )
    return _Graph(
        n=n,
        compute_units=_to_units(compute),
        load_units=_to_units(load),
        loadable=loadable,
        outputs=np.array([bool(node.output) for node in nodes], dtype=bool),
        edge_child=np.array(edge_child, dtype=np.int64),
        edge_parent=np.array(edge_parent, dtype=np.int64),
    )


def _check_cost(name: str, field: str, value: object, problems: list[str]) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:  # type: ignore[arg-type, operator]
        problems.append(
            f"node {name!r} has {field}={value!r}; expected a finite number of seconds >= 0"
        )


def _to_units(seconds: np.ndarray) -> np.ndarray:
    """Seconds to whole microseconds (int64), rounding half to even."""
    return np.rint(seconds / RESOLUTION_S).astype(np.int64)


def _find_cycle(n: int, edge_child: Sequence[int], edge_parent: Sequence[int]) -> list[int]:
    """Kahn's topological sort; return one cycle as node indices (first = last), or []."""
    pending = [0] * n  # inputs not yet sorted, per node
    consumers: list[list[int]] = [[] for _ in range(n)]
    for child, parent in zip(edge_child, edge_parent, strict=True):
        pending[child] += 1
        consumers[parent].append(child)
    ready = [i for i in range(n) if pending[i] == 0]
    done = 0
    while ready:
        i = ready.pop()
        done += 1
        for child in consumers[i]:
            pending[child] -= 1
            if pending[child] == 0:
                ready.append(child)
    if done == n:
        return []
    # Every unsorted node has an unsorted input: walk inputs backwards until one repeats.
    unsorted_input: dict[int, int] = {}
    for child, parent in zip(edge_child, edge_parent, strict=True):
        if pending[child] and pending[parent] and child not in unsorted_input:
            unsorted_input[child] = parent
    start = min(unsorted_input)
    seen: dict[int, int] = {}
    walk: list[int] = []
    i = start
    while i not in seen:
        seen[i] = len(walk)
        walk.append(i)
        i = unsorted_input[i]
    cycle = walk[seen[i] :]
    cycle.reverse()  # input before consumer: a -> b means b reads a
    first = cycle.index(min(cycle))  # start at the node given first, for a stable message
    cycle = cycle[first:] + cycle[:first]
    return [*cycle, cycle[0]]


def _make_plan(nodes: Sequence[PlanNode], codes: Iterable[int]) -> ReusePlan:
    names = (PRUNE, LOAD, COMPUTE)
    states: dict[str, NodeState] = {}
    cost = 0.0
    for node, code in zip(nodes, codes, strict=True):
        state = names[int(code)]
        states[node.name] = state
        if state == COMPUTE:
            cost += node.compute_cost
        elif state == LOAD:
            cost += node.load_cost  # type: ignore[operator]
    return ReusePlan(states=states, cost=float(cost))


def _join(problems: Sequence[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return "\n".join(
        [f"{len(problems)} problems in the reuse-plan input:"] + [f"  - {p}" for p in problems]
    )
