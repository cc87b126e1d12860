"""The role table and the vocabulary enums: one definition, strings' stand-ins everywhere."""

from __future__ import annotations

import enum
import json
from typing import Any

from hypothesis import given, strategies as st

from helix_tf import workflow
from helix_tf.compiler._dag import JSON_KIND, OUTPUT_TYPE
from helix_tf.compiler.hashing import canonical_json, stable_hash
from helix_tf.reuse import plan
from helix_tf.reuse.costs import DEFAULT_COMPUTE_SECONDS, MODEL_LOAD_SECONDS
from helix_tf.reuse.metadata import NODE_STATES
from helix_tf.roles import (
    PREPROCESS_STEP,
    ROLE_SPECS,
    NodeState,
    Role,
    Stage,
    output_type,
    state_counts,
)
from helix_tf.types import VALUE_KINDS, ArtifactKind, ValueKind, Vocabulary
from helix_tf.workflow import Workflow

MEMBERS: list[Vocabulary] = [
    m for cls in (Role, NodeState, Stage, ArtifactKind, ValueKind) for m in cls
]


def _plain(value: Any) -> Any:
    """``value`` with every vocabulary member replaced by its plain string."""
    if isinstance(value, Vocabulary):
        return str.__str__(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


_leaves = st.one_of(st.sampled_from(MEMBERS), st.text(max_size=5), st.integers(), st.none())
_keys = st.one_of(st.sampled_from(MEMBERS), st.text(max_size=5))
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(_keys, inner, max_size=4),
    ),
    max_leaves=12,
)


@given(_values)
def test_a_member_hashes_as_its_plain_string(value: Any) -> None:
    plain = _plain(value)
    assert canonical_json(value) == canonical_json(plain)
    assert stable_hash(value) == stable_hash(plain)
    assert json.dumps(value, sort_keys=True) == json.dumps(plain, sort_keys=True)


def test_a_member_stands_for_its_string() -> None:
    for m in MEMBERS:
        assert m == m.value and f"{m}" == m.value and repr(m) == repr(m.value)
        assert canonical_json(m) == canonical_json(m.value)
        assert type(m)(m.value) is m


def test_other_enums_keep_their_enum_form() -> None:
    """Only helix_tf's vocabulary hashes as plain strings: users' enums hash as before."""

    class Mode(enum.StrEnum):
        FAST = "fast"

    assert canonical_json(Mode.FAST) != canonical_json("fast")
    assert '"__enum__"' in canonical_json(Mode.FAST)
    assert '"__dict__"' in canonical_json({Mode.FAST: 1})


def test_states_are_defined_once() -> None:
    assert tuple(NodeState) == (plan.COMPUTE, plan.LOAD, plan.PRUNE)
    assert plan.COMPUTE is NodeState.COMPUTE and plan.PRUNE is NodeState.PRUNE
    assert NODE_STATES == tuple(NodeState) == ("compute", "load", "prune")


def test_old_names_are_derived_from_the_table() -> None:
    """The public tables that existed before the role table, with their old values."""
    assert workflow.ROLES == tuple(Role) == tuple(ROLE_SPECS)
    assert workflow.ROLES == (
        "source",
        "feature",
        "examples",
        "train",
        "predict",
        "evaluate",
        "explain",
    )
    assert JSON_KIND == {
        "source": "source",
        "feature": "preprocess",
        "examples": "preprocess",
        "train": "train",
        "predict": "predict",
        "evaluate": "evaluate",
        "explain": "explain",
    }
    assert OUTPUT_TYPE == {
        "source": "table",
        "examples": "examples",
        "train": "model",
        "predict": "predictions",
        "evaluate": "metrics",
        "explain": "explanation",
    }
    assert DEFAULT_COMPUTE_SECONDS == {
        "source": 2.0,
        "feature": 1.0,
        "examples": 1.0,
        "train": 10.0,
        "predict": 2.0,
        "evaluate": 0.2,
        "explain": 2.0,
    }
    assert MODEL_LOAD_SECONDS == 0.3
    assert VALUE_KINDS == ("numeric", "string", "categorical", "tokens", "bag")
    assert output_type("feature", "bag") == "feature:bag" and output_type(Role.TRAIN) == "model"


def test_every_role_is_declared_by_a_workflow_method_and_run_by_an_engine_step() -> None:
    for role, spec in ROLE_SPECS.items():
        assert spec.role is role
        assert callable(getattr(Workflow, role)), f"Workflow has no method {role}"
        assert spec.step == PREPROCESS_STEP or spec.step == role
        for i in spec.inputs:
            assert i.roles and all(r in ROLE_SPECS for r in i.roles)
        if spec.split is not None:
            assert spec.split_verb and any(i.ref == "examples" for i in spec.inputs)


def test_declarations_carry_the_role_member(tmp_path: Any) -> None:
    from helix_tf import features as F, learners, sources

    (tmp_path / "t.csv").write_text("1,a\n2,b\n", encoding="utf-8")
    wf = Workflow("w")
    wf.source(
        "rows", sources.Csv(train=str(tmp_path / "t.csv"), columns={"x": "int", "y": "string"})
    )
    x = wf.feature("x", F.Numeric("x"))
    ex = wf.examples("ex", [x], label=F.Label("y", positive="a"))
    wf.train("m", ex, learners.Linear())
    assert [d.role for d in wf.declarations] == [
        Role.SOURCE,
        Role.FEATURE,
        Role.EXAMPLES,
        Role.TRAIN,
    ]
    assert all(type(d.role) is Role for d in wf.declarations)


@given(st.lists(st.sampled_from([*NodeState, *(str(s) for s in NodeState), "skipped"])))
def test_state_counts_count_every_state_once_in_plan_order(states: list[str]) -> None:
    counts = state_counts(states)
    assert list(counts)[:3] == list(NodeState)  # every state, in plan order, even at 0
    assert sum(counts.values()) == len(states)
    for state in NodeState:
        assert counts[state] == sum(s == state for s in states)
    assert counts.get("skipped", 0) == states.count("skipped")  # unknown: under its name
