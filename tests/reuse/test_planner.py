"""plan_reuse: the store-aware planner's decisions and their reasons, one per situation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import CompiledWorkflow, compile_workflow
from helix_tf.reuse import planning
from helix_tf.reuse.costs import CostModel
from helix_tf.reuse.planner import human_bytes, plan_reuse
from helix_tf.roles import NodeState

ROWS = "\n".join(f"{20 + i},{'ab'[i % 2]}" for i in range(10)) + "\n"


def _compiled(folder: Path, *, epochs: int = 1, dead: bool = False) -> CompiledWorkflow:
    (folder / "rows.csv").write_text(ROWS, encoding="utf-8")
    wf = Workflow("planner")
    wf.source(
        "rows",
        sources.Csv(
            train=str(folder / "rows.csv"),
            test_fraction=0.3,
            columns={"age": "int", "kind": "string"},
        ),
    )
    age = wf.feature("age", F.Numeric("age"))
    if dead:
        wf.feature("unused", F.Numeric("age"))
    ex = wf.examples("examples", [age], label=F.Label("kind", positive="a"))
    model = wf.train("learner", ex, learners.Linear(epochs=epochs))
    wf.output(wf.evaluate("evaluation", wf.predict("predictions", model, ex), metrics.Accuracy()))
    return compile_workflow(wf, hasher=ContentHasher())


def _seconds(**by_name: float) -> dict[str, Any]:
    return {n: SimpleNamespace(compute_seconds=s) for n, s in by_name.items()}


def _decide(compiled: CompiledWorkflow, stored: dict[str, int | None], **kw: Any) -> dict:
    history = kw.pop("history", {})
    decisions = plan_reuse(compiled, stored=stored, costs=CostModel(history=history), **kw)
    assert [d.name for d in decisions] == [n.name for n in compiled.nodes]
    return {d.name: d for d in decisions}


def test_a_first_run_computes_every_node_as_new(tmp_path: Path) -> None:
    compiled = _compiled(tmp_path)
    out = _decide(compiled, {})
    assert {d.state for d in out.values()} == {NodeState.COMPUTE}
    assert {d.reason for d in out.values()} == {"new node"}
    learner = out["learner"]
    assert learner.kind == "train" and learner.compute_cost == 10.0 and learner.load_cost is None
    assert learner.fingerprint == compiled.node("learner").fingerprint
    assert out["age"].kind == "preprocess"


def test_an_unchanged_rerun_loads_the_output_and_prunes_the_rest(tmp_path: Path) -> None:
    compiled = _compiled(tmp_path)
    stored = {n.name: 1_000 for n in compiled.nodes}
    history = _seconds(rows=1, age=1, examples=1, learner=5, predictions=1, evaluation=1)
    out = _decide(compiled, stored, history=history, previous=compiled.to_dict())
    assert out["evaluation"].state == NodeState.LOAD
    assert out["evaluation"].reason == (
        "unchanged: loading 1.0 KB (0.01 s) beats recomputing (10.00 s, with 5 upstream node(s))"
    )
    assert out["learner"].state == NodeState.PRUNE
    assert out["learner"].reason == "pruned: nothing downstream needs it"
    assert out["learner"].load_cost == pytest.approx(0.305005)


def test_a_learner_change_recomputes_downstream_of_loaded_examples(tmp_path: Path) -> None:
    old = _compiled(tmp_path)
    new = _compiled(tmp_path, epochs=3)
    unchanged = ("rows", "age", "examples")
    stored = {n: 2_000_000 for n in unchanged}
    history = _seconds(rows=4, age=3, examples=2, learner=5, predictions=1, evaluation=1)
    out = _decide(new, stored, history=history, previous=old.to_dict())
    assert [out[n].state for n in unchanged] == [NodeState.PRUNE, NodeState.PRUNE, NodeState.LOAD]
    assert out["examples"].reason == (
        "unchanged: loading 2.0 MB (0.01 s) beats recomputing (9.00 s, with 2 upstream node(s))"
    )
    assert out["learner"].state == NodeState.COMPUTE
    assert out["learner"].reason == "changed: learner.epochs 1 → 3"
    assert out["predictions"].reason == "changed: input changed: learner"


def test_a_config_back_at_an_earlier_version_says_what_differs_from_the_last(
    tmp_path: Path,
) -> None:
    """Run with epochs=3 after epochs=1, then back at 1: every node is stored, the learner
    pruned and the evaluation loaded. The plan called the evaluation "unchanged" and
    ``helix-tf status`` said "unchanged since v2" though the config is not v2."""
    earlier, last = _compiled(tmp_path), _compiled(tmp_path, epochs=3)
    stored = {n.name: 1_000 for n in earlier.nodes}
    history = _seconds(rows=1, age=1, examples=1, learner=5, predictions=1, evaluation=1)
    out = _decide(earlier, stored, history=history, previous=last.to_dict())
    assert out["learner"].state == NodeState.PRUNE
    assert out["learner"].changed == ("learner.epochs 3 → 1",)
    assert out["evaluation"].state == NodeState.LOAD
    assert out["evaluation"].reason.startswith("stored by an earlier version: loading 1.0 KB")
    # Changed through an input only, or not at all: nothing of its own to say.
    assert out["evaluation"].changed == out["examples"].changed == ()
    assert _decide(earlier, stored, history=history)["learner"].changed == ()  # no version yet


def test_a_cheap_node_is_recomputed_rather_than_loaded(tmp_path: Path) -> None:
    compiled = _compiled(tmp_path)
    stored = {n.name: 10**9 for n in compiled.nodes}
    history = _seconds(rows=0.001, age=0.001, examples=0.001, learner=0.001, predictions=0.001)
    out = _decide(compiled, stored, history=history, previous=compiled.to_dict())
    assert out["evaluation"].state == NodeState.COMPUTE
    assert out["evaluation"].reason == "recomputing (0.20 s) beats loading 1.0 GB (5.00 s)"


def test_unchanged_but_unstored_and_dead_nodes(tmp_path: Path) -> None:
    compiled = _compiled(tmp_path, dead=True)
    out = _decide(compiled, {}, previous=compiled.to_dict())
    assert out["learner"].reason == "unchanged, but no valid stored result"
    assert out["unused"].state == NodeState.PRUNE
    assert out["unused"].reason == "pruned: reaches no output (dead operator)"


def test_a_volatile_node_says_it_is_never_reused(tmp_path: Path) -> None:
    compiled = _compiled(tmp_path)
    nodes = tuple(
        dataclasses.replace(n, facts={**n.facts, "volatile": ["reads the clock"]})
        if n.name == "age"
        else n
        for n in compiled.nodes
    )
    compiled = dataclasses.replace(compiled, nodes=nodes)
    out = _decide(compiled, {})
    assert out["age"].reason == "never reused, recomputed every run: reads the clock"


def test_the_old_module_names_still_import() -> None:
    from helix_tf.reuse import plan, solver

    assert planning.plan_reuse is plan_reuse and planning.human_bytes is human_bytes
    assert plan.solve_reuse_plan is solver.solve_reuse_plan and plan.PlanNode is solver.PlanNode


@pytest.mark.parametrize(
    ("n", "text"), [(None, "?"), (999, "999 B"), (1_500, "1.5 KB"), (2 * 10**12, "2.0 TB")]
)
def test_human_bytes(n: int | None, text: str) -> None:
    assert human_bytes(n) == text
