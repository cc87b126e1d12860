"""Applying a proposal: in place through config_edit, else a wrapper config beside."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from helix_tf import history
from helix_tf.agent._apply import apply_proposal
from helix_tf.config import load_config
from tests.conftest import TINY_CENSUS

LITERAL = TINY_CENSUS.replace("epochs=params.epochs", "epochs=1")


def _cfg(make_config: Callable[..., Path], census_like, body: str = LITERAL) -> Path:
    train, test = census_like
    return make_config(body, train=train, test=test)


def test_literal_keywords_are_rewritten_in_place(make_config, census_like) -> None:
    cfg = _cfg(make_config, census_like)
    value = 0.00015119336467641018
    applied = apply_proposal(
        cfg, {"learner.l2": value, "education.min_count": 3}, label="agent1", declared={"epochs"}
    )
    assert not applied.new_file and applied.path == cfg.resolve()
    assert "+" in applied.diff and "min_count=3" in cfg.read_text()
    wf = load_config(cfg).workflow
    assert wf.declaration("learner").op.l2 == value  # floats round-trip exactly
    assert wf.declaration("education").op.min_count == 3


def test_an_expression_goes_to_a_wrapper_with_the_same_fingerprints(
    make_config, census_like
) -> None:
    cfg = _cfg(make_config, census_like, TINY_CENSUS)  # epochs=params.epochs
    before = cfg.read_text()
    overrides = {"learner.epochs": 2, "learner.l2": 1e-3, "epochs": 1}
    applied = apply_proposal(cfg, overrides, label="agent3", declared={"epochs"})
    assert applied.new_file and applied.path == cfg.resolve().with_name("cfg.agent3.py")
    assert cfg.read_text() == before  # the original is untouched
    assert any("expression" in r for r in applied.reasons)
    wrapped = history.describe(applied.path)
    direct = history.describe(cfg, params=overrides)
    assert [n.fingerprint for n in wrapped.nodes] == [n.fingerprint for n in direct.nodes]


def test_a_structural_proposal_goes_to_a_wrapper_with_the_same_fingerprints(
    make_config, census_like
) -> None:
    cfg = _cfg(make_config, census_like)
    overrides = {
        "model:learner": "DNN",
        "add:capital_loss": "numeric",
        "bucketize:age": "25,40,60",
        "cross:education*occupation": 100,
        "learner.l2": 1e-3,
    }
    applied = apply_proposal(cfg, overrides, label="agent2", declared={"epochs"})
    assert applied.new_file and "EDITS" in applied.path.read_text()
    wrapped = history.describe(applied.path)
    direct = history.describe(cfg, params=overrides)
    assert [n.fingerprint for n in wrapped.nodes] == [n.fingerprint for n in direct.nodes]
    assert "capital_loss" in {n.name for n in wrapped.nodes}
