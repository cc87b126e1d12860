"""Tests for the max-flow reuse planner against hand examples and brute force."""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from helix_tf.errors import PlanError
from helix_tf.reuse import solver as plan_module
from helix_tf.reuse.solver import (
    PlanNode,
    ReusePlan,
    available,
    brute_force_plan,
    solve_reuse_plan,
)


def node(
    name: str,
    *inputs: str,
    c: float = 1.0,
    l: float | None = None,  # noqa: E741
    out: bool = False,
) -> PlanNode:
    return PlanNode(name=name, inputs=inputs, compute_cost=c, load_cost=l, output=out)


def census_chain(*, model_load: float | None) -> list[PlanNode]:
    """rows -> examples -> model -> checked (output), all materialized except maybe model."""
    return [
        node("rows", c=10.0, l=2.0),
        node("examples", "rows", c=20.0, l=3.0),
        node("model", "examples", c=60.0, l=model_load),
        node("checked", "model", "examples", c=1.0, l=0.1, out=True),
    ]


# --- hand examples ---------------------------------------------------------------------------


def test_unchanged_rerun_loads_outputs_and_computes_nothing() -> None:
    plan = solve_reuse_plan(census_chain(model_load=0.5))
    assert plan.states == {
        "rows": "prune",
        "examples": "prune",
        "model": "prune",
        "checked": "load",
    }
    assert plan.cost == pytest.approx(0.1)


def test_expensive_load_is_recomputed() -> None:
    nodes = [
        node("a", c=1.0, l=0.5),
        node("b", "a", c=2.0, l=100.0, out=True),
    ]
    plan = solve_reuse_plan(nodes)
    assert plan.states == {"a": "load", "b": "compute"}
    assert plan.cost == pytest.approx(2.5)


def test_changed_learner_reuses_preprocessing() -> None:
    # The model's fingerprint changed: model and checked must be recomputed.
    nodes = census_chain(model_load=None)
    nodes[3] = node("checked", "model", "examples", c=1.0, l=None, out=True)
    plan = solve_reuse_plan(nodes)
    assert plan.states == {
        "rows": "prune",
        "examples": "load",
        "model": "compute",
        "checked": "compute",
    }
    assert plan.cost == pytest.approx(64.0)


def test_nodes_nothing_needs_are_pruned() -> None:
    nodes = [
        node("src", c=5.0),
        node("used", "src", c=1.0, out=True),
        node("dead", "src", c=1.0, l=0.1),
        node("dead_leaf", "dead", c=3.0),
    ]
    plan = solve_reuse_plan(nodes)
    assert plan.states == {
        "src": "compute",
        "used": "compute",
        "dead": "prune",
        "dead_leaf": "prune",
    }
    assert plan.cost == pytest.approx(6.0)


def test_unloadable_node_forces_its_inputs_available() -> None:
    nodes = [
        node("x", c=3.0, l=1.0),
        node("y", c=4.0),
        node("z", "x", "y", c=1.0, out=True),
    ]
    plan = solve_reuse_plan(nodes)
    assert plan.states == {"x": "load", "y": "compute", "z": "compute"}
    assert available(plan.states) == {"x", "y", "z"}
    assert plan.cost == pytest.approx(6.0)


def test_loading_an_input_beats_computing_an_expensive_ancestor() -> None:
    nodes = [
        node("raw", c=100.0),
        node("clean", "raw", c=1.0, l=5.0),
        node("out", "clean", c=1.0, out=True),
    ]
    assert solve_reuse_plan(nodes).states == {"raw": "prune", "clean": "load", "out": "compute"}


def test_shared_ancestor_is_computed_once() -> None:
    # Computing "base" once serves both outputs: 10 + 1 + 1 < 2 * 7 loads.
    nodes = [
        node("base", c=10.0),
        node("o1", "base", c=1.0, l=7.0, out=True),
        node("o2", "base", c=1.0, l=7.0, out=True),
    ]
    plan = solve_reuse_plan(nodes)
    assert plan.states == {"base": "compute", "o1": "compute", "o2": "compute"}
    assert plan.cost == pytest.approx(12.0)


def test_zero_costs_and_ties_are_deterministic() -> None:
    nodes = [
        node("a", c=0.0, l=0.0),
        node("b", "a", c=0.0, l=0.0, out=True),
        node("c", "a", c=0.0),
        node("d", "c", c=0.0, out=True),
    ]
    plan = solve_reuse_plan(nodes)
    # Ties favour the fewest true variables: load over compute, prune over both.
    assert plan.states == {"a": "load", "b": "load", "c": "compute", "d": "compute"}
    assert plan.cost == 0.0
    assert all(solve_reuse_plan(nodes) == plan for _ in range(3))


def test_equal_compute_and_load_prefers_load() -> None:
    assert solve_reuse_plan([node("a", c=2.0, l=2.0, out=True)]).states == {"a": "load"}


def test_sub_microsecond_costs_round_to_zero() -> None:
    nodes = [node("a", c=4e-7), node("b", "a", c=1e-7, l=3e-7, out=True)]
    plan = solve_reuse_plan(nodes)
    # Every cost rounds to 0 µs: a tie, so the fewest true variables win (load b).
    assert plan.states == {"a": "prune", "b": "load"}
    assert plan.cost == pytest.approx(3e-7)


def test_microsecond_differences_are_resolved() -> None:
    nodes = [node("a", c=0.000002), node("b", "a", c=0.000001, l=0.000004, out=True)]
    assert solve_reuse_plan(nodes).states == {"a": "compute", "b": "compute"}
    nodes = [node("a", c=0.000002), node("b", "a", c=0.000002, l=0.000003, out=True)]
    assert solve_reuse_plan(nodes).states == {"a": "prune", "b": "load"}


def test_states_follow_input_order_whatever_the_topological_order() -> None:
    nodes = [node("late", "early", c=1.0, out=True), node("early", c=1.0)]
    plan = solve_reuse_plan(nodes)
    assert list(plan.states) == ["late", "early"]
    assert plan.states == {"late": "compute", "early": "compute"}


def test_empty_graph() -> None:
    assert solve_reuse_plan([]) == ReusePlan(states={}, cost=0.0)
    assert brute_force_plan([]) == ReusePlan(states={}, cost=0.0)


def test_no_outputs_prunes_everything() -> None:
    nodes = [node("a", c=1.0, l=1.0), node("b", "a", c=1.0)]
    assert solve_reuse_plan(nodes).states == {"a": "prune", "b": "prune"}


def test_many_outputs_with_large_costs_do_not_overflow() -> None:
    # Each output would add one "infinity" out of the source without the hub vertex.
    nodes = [node(f"o{i}", c=1e6, l=1e6 + 1, out=True) for i in range(2000)]
    plan = solve_reuse_plan(nodes)
    assert set(plan.states.values()) == {"compute"}
    assert plan.cost == pytest.approx(2e9)


def test_duplicate_inputs_are_allowed() -> None:
    nodes = [node("a", c=1.0), node("b", "a", "a", c=1.0, out=True)]
    assert solve_reuse_plan(nodes).states == {"a": "compute", "b": "compute"}


def test_brute_force_matches_hand_example() -> None:
    nodes = census_chain(model_load=None)
    assert brute_force_plan(nodes) == solve_reuse_plan(nodes)


def test_available_helper() -> None:
    assert available({"a": "compute", "b": "load", "c": "prune"}) == {"a", "b"}
    assert available({}) == set()


def test_doctests() -> None:
    result = doctest.testmod(plan_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_planner_never_imports_tensorflow_or_beam() -> None:
    code = (
        "import sys, helix_tf.reuse.solver\n"
        "bad = [m for m in ('tensorflow', 'keras', 'apache_beam') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "match"),
    [
        pytest.param(
            [node("a"), node("a")], r"duplicate node name 'a' \(positions 0 and 1\)", id="dup"
        ),
        pytest.param(
            [node("rows"), node("b", "rowz")],
            r"node 'b' reads unknown input 'rowz' \(did you mean 'rows'\?\)",
            id="unknown-input",
        ),
        pytest.param([node("a", "a")], r"cycle: 'a' -> 'a'", id="self-loop"),
        pytest.param(
            [node("a", "c"), node("b", "a"), node("c", "b"), node("d", "c", out=True)],
            r"cycle: 'a' -> 'b' -> 'c' -> 'a'",
            id="cycle",
        ),
        pytest.param([node("a", c=-1.0)], r"'a' has compute_cost=-1.0; expected", id="neg-c"),
        pytest.param([node("a", l=float("nan"))], r"'a' has load_cost=nan", id="nan-l"),
        pytest.param([node("a", c=float("inf"))], r"'a' has compute_cost=inf", id="inf-c"),
        pytest.param(
            [PlanNode(name="b", inputs="a", compute_cost=1.0, load_cost=None)],  # type: ignore[arg-type]
            r"inputs='a', a string; expected a tuple",
            id="str-inputs",
        ),
        pytest.param(
            [node("a", "x"), node("a", c=-2.0)],
            r"2 problems in the reuse-plan input:\n  - duplicate.*\n  - node 'a' has compute_cost",
            id="collects-problems",
        ),
        pytest.param([node("a", c=1e13, out=True)], r"costs add up to 1e\+13 s", id="too-large"),
    ],
)
def test_bad_input_raises_plan_error(nodes: list[PlanNode], match: str) -> None:
    with pytest.raises(PlanError, match=match):
        solve_reuse_plan(nodes)
    with pytest.raises(PlanError, match=match):
        brute_force_plan(nodes)


def test_brute_force_refuses_large_graphs() -> None:
    with pytest.raises(PlanError, match=r"at most 12 nodes, but got n=13"):
        brute_force_plan([node(f"n{i}") for i in range(13)])


# --- properties against brute force ----------------------------------------------------------


@st.composite
def small_dags(draw: st.DrawFn) -> list[PlanNode]:
    """Random DAGs of 1-8 nodes with integer-second costs, shuffled into any order."""
    n = draw(st.integers(min_value=1, max_value=8))
    nodes = []
    for i in range(n):
        parents = draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else ()
        loadable = draw(st.booleans())
        nodes.append(
            PlanNode(
                name=f"n{i}",
                inputs=tuple(f"n{p}" for p in sorted(parents)),
                compute_cost=float(draw(st.integers(min_value=0, max_value=20))),
                load_cost=float(draw(st.integers(min_value=0, max_value=20))) if loadable else None,
                output=draw(st.booleans()),
            )
        )
    return draw(st.permutations(nodes))


@settings(max_examples=200, deadline=None)
@given(small_dags())
def test_solver_equals_brute_force(nodes: list[PlanNode]) -> None:
    plan = solve_reuse_plan(nodes)
    best = brute_force_plan(nodes)

    assert plan.cost == best.cost
    # Both break ties by the fewest true variables, which picks a unique plan.
    assert plan.states == best.states
    assert list(plan.states) == [nd.name for nd in nodes]

    by_name = {nd.name: nd for nd in nodes}
    avail = available(plan.states)
    assert {nd.name for nd in nodes if nd.output} <= avail
    for name, state in plan.states.items():
        assert state in {"compute", "load", "prune"}
        if state == "compute":
            assert all(plan.states[p] != "prune" for p in by_name[name].inputs)
        if state == "load":
            assert by_name[name].load_cost is not None
    expected = sum(
        nd.compute_cost if plan.states[nd.name] == "compute" else nd.load_cost or 0.0
        for nd in nodes
        if plan.states[nd.name] != "prune"
    )
    assert plan.cost == expected
    assert solve_reuse_plan(nodes) == plan  # deterministic
