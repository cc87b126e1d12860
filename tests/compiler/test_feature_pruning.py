"""Deriving the workflow a learner is retrained on once some features proved useless."""

from __future__ import annotations

from pathlib import Path

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.compiler.feature_pruning import features_to_drop, without_features
from helix_tf.compiler.graph import compile_workflow


def _workflow(tmp_path: Path, *, second_learner: bool = False) -> Workflow:
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,c,y\n1,x,2,1\n")
    wf = Workflow("w")
    wf.source(
        "rows",
        sources.Csv(
            train=str(csv),
            columns=[("a", "float"), ("b", "string"), ("c", "float"), ("y", "string")],
            header=True,
            test_fraction=0.5,
        ),
    )
    a = wf.feature("a", F.Numeric("a"))
    b = wf.feature("b", F.Vocabulary("b"))
    c = wf.feature("c", F.Numeric("c"))
    ex = wf.examples("examples", [a, b, c], label=F.Label("y", positive="1"))
    model = wf.train("learner", ex, learners.Linear())
    wf.output(wf.evaluate("evaluation", wf.predict("p", model, ex), metrics.Accuracy()))
    if second_learner:
        other = wf.train("other", ex, learners.Linear(l2=0.1))
        wf.output(wf.evaluate("evaluation2", wf.predict("p2", other, ex), metrics.Accuracy()))
    return wf


def test_dropped_features_leave_the_examples_and_the_workflow(tmp_path: Path) -> None:
    wf = _workflow(tmp_path)
    drop, notes = features_to_drop(wf, {"learner": {"b"}})
    assert drop == {"examples": {"b"}} and notes == []
    derived = without_features(wf, drop)
    names = [d.name for d in derived.declarations]
    assert "b" not in names
    assert [f.name for f in derived.declaration("examples").refs["features"]] == ["a", "c"]
    # The original is untouched.
    assert [f.name for f in wf.declaration("examples").refs["features"]] == ["a", "b", "c"]
    before, after = compile_workflow(wf), compile_workflow(derived)
    # Only the examples and what depends on them get new fingerprints.
    for name in ("rows", "a", "c"):
        assert before.node(name).fingerprint == after.node(name).fingerprint
    for name in ("examples", "learner", "p", "evaluation"):
        assert before.node(name).fingerprint != after.node(name).fingerprint


def test_shared_examples_drop_only_what_every_learner_ignores(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, second_learner=True)
    drop, notes = features_to_drop(wf, {"learner": {"b", "c"}, "other": {"c"}})
    assert drop == {"examples": {"c"}}
    assert len(notes) == 1 and "learner: b kept" in notes[0]


def test_examples_whose_every_feature_is_zero_are_left_alone(tmp_path: Path) -> None:
    wf = _workflow(tmp_path)
    drop, notes = features_to_drop(wf, {"learner": {"a", "b", "c"}})
    assert drop == {}
    assert "every feature has only zero weights" in notes[0]


def test_nothing_zero_means_nothing_dropped(tmp_path: Path) -> None:
    wf = _workflow(tmp_path)
    assert features_to_drop(wf, {"learner": set()}) == ({}, [])
    assert [d.name for d in without_features(wf, {}).declarations] == [
        d.name for d in wf.declarations
    ]
