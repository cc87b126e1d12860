"""``helix_tf.run``/``plan`` with ``outputs``: deliver only the named nodes (the agent's trials)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import helix_tf
from helix_tf.errors import ConfigError, HelixError
from helix_tf.reuse.store import ArtifactStore
from helix_tf.roles import NodeState
from tests.conftest import TINY_CENSUS

#: The tiny census workflow with an explanation output beside its evaluation.
WITH_EXPLANATION = TINY_CENSUS.replace(
    "    return wf\n", '    wf.output(wf.explain("explanation", model, examples))\n    return wf\n'
)


def test_a_run_of_only_the_evaluation_prunes_the_explanation_and_stores_for_later(
    make_config: object, census_like: tuple[Path, Path], store: str
) -> None:
    train, test = census_like
    config = make_config(WITH_EXPLANATION, train=train, test=test)  # type: ignore[operator]
    validation = helix_tf.Validation()
    plan = helix_tf.plan(config, store=store, validation=validation, outputs=["evaluation"])
    states = {n.name: n.state for n in plan.nodes}
    assert states["explanation"] == NodeState.PRUNE and states["evaluation"] == NodeState.COMPUTE
    # Everything computed is kept: the helix policy decides by measured times, and on
    # tiny data under load it may keep no model (this test is about fingerprints).
    only = helix_tf.run(
        config, store=store, validation=validation, outputs=["evaluation"], materialize="all"
    )
    ran = {n.name: n.state for n in only.nodes}
    assert ran["explanation"] == NodeState.PRUNE and ran["learner"] == NodeState.COMPUTE
    # The same fingerprints: a full run afterwards finds the model stored (whether it
    # loads it is the cost model's call: a trainer traced earlier in this process can
    # make retraining the tiny model cheaper than loading it) and computes the explanation.
    learner = next(n for n in only.nodes if n.name == "learner")
    assert learner.materialized
    later = {n.name: n for n in helix_tf.plan(config, store=store, validation=validation).nodes}
    assert later["learner"].fingerprint == learner.fingerprint
    assert later["learner"].load_cost is not None  # stored, so loading is an option
    full = helix_tf.run(config, store=store, validation=validation)
    again = {n.name: n.state for n in full.nodes}
    assert again["explanation"] == NodeState.COMPUTE
    assert full.metrics == only.metrics


@pytest.mark.parametrize(
    ("outputs", "match"),
    [
        (["evaluaton"], "did you mean 'evaluation'"),
        ("evaluation", "non-empty list of node names"),
        ([], "non-empty list of node names"),
    ],
)
def test_bad_outputs_are_named(
    tiny_census_config: Path, store: str, outputs: object, match: str
) -> None:
    with pytest.raises(HelixError, match=match):
        helix_tf.plan(tiny_census_config, store=store, outputs=outputs)  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ["beside the config", "--store", "--metadata"])
def test_a_plan_creates_no_store_and_no_database(
    tiny_census_config: Path, tmp_path: Path, where: str
) -> None:
    """``plan`` of a config no run has stored (a new folder, a mistyped --store or
    --metadata path) made the store's folders, its marker and an empty database there.
    It plans every node computed, and writes nothing."""
    if where == "--metadata":  # a store a run made, and a mistyped database path
        ArtifactStore(str(tmp_path / ".helix"))
    before = _files(tmp_path)
    store = str(tmp_path / "typo" / "store") if where == "--store" else None
    metadata = f"sqlite:///{tmp_path / 'typo' / 'md.db'}" if where == "--metadata" else None
    found = helix_tf.plan(tiny_census_config, store=store, metadata=metadata)
    assert {n.state for n in found.nodes} == {"compute"}
    assert {n.reason for n in found.nodes} == {"new node"}
    assert _files(tmp_path) == before


def _files(folder: Path) -> list[Path]:
    """What is in ``folder`` but the example data and the content-hash memo (a cache a
    plan may refresh in an existing store)."""
    skip = (".helix/sample_data", "content-hashes.json")
    return sorted(p for p in folder.rglob("*") if not any(s in str(p) for s in skip))


# QA 27: approx=True failed deep in the planner ("'bool' object has no attribute
# 'resolved'"); a settings object or None is what run and plan take, and the error says so.
@pytest.mark.parametrize(
    ("setting", "value"),
    [("approx", True), ("approx", 0.1), ("approx", {"sample": 0.1}), ("validation", True)],
)
@pytest.mark.parametrize("entry", ["run", "plan"])
def test_a_setting_that_is_not_its_object_is_named_with_an_example(
    tiny_census_config: Path, entry: str, setting: str, value: Any, tmp_path: Path
) -> None:
    kind = "Approx" if setting == "approx" else "Validation"
    with pytest.raises(ConfigError, match=rf"{setting} must be helix_tf\.{kind}\(\.\.\.\) or None"):
        getattr(helix_tf, entry)(tiny_census_config, store=str(tmp_path / "s"), **{setting: value})
    assert not (tmp_path / "s").exists()
