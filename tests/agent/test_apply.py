"""Writing a proposal into a config: the keyword at the declaring call, or PARAMS."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helix_tf.agent._apply import edit_config
from helix_tf.config import load_config
from helix_tf.errors import ConfigError
from tests.conftest import TINY_CENSUS

LITERAL = TINY_CENSUS.replace("epochs=params.epochs", "epochs=1")


def _cfg(make_config: Callable[..., Path], census_like, body: str = LITERAL) -> Path:
    train, test = census_like
    return make_config(body, train=train, test=test)


def _op(cfg: Path, node: str):
    return load_config(cfg).workflow.declaration(node).op


def test_keywords_rewritten_or_added_at_the_declaring_call(make_config, census_like) -> None:
    cfg = _cfg(make_config, census_like)
    before = cfg.read_text()
    edit = edit_config(
        cfg, {"learner.learning_rate": 0.0123, "learner.l2": 1e-05, "education.min_count": 3}
    )
    assert not edit.new_file and edit.path == cfg.resolve()
    assert '-        "learner", examples, learners.Linear(epochs=1' in edit.diff
    assert "learning_rate=0.0123" in edit.text and "l2=1e-05" in edit.text
    assert 'F.Vocabulary("education", min_count=3)' in edit.text
    assert cfg.read_text() == before  # nothing written yet
    cfg.write_text(edit.text)
    op = _op(cfg, "learner")
    assert (op.learning_rate, op.l2, op.epochs) == (0.0123, 1e-05, 1)
    assert _op(cfg, "education").min_count == 3


def test_floats_round_trip_exactly(make_config, census_like) -> None:
    cfg = _cfg(make_config, census_like)
    value = 0.00015119336467641018
    cfg.write_text(edit_config(cfg, {"learner.l2": value}).text)
    assert _op(cfg, "learner").l2 == value


def test_declared_param_is_rewritten_in_params(make_config, census_like) -> None:
    cfg = _cfg(make_config, census_like, TINY_CENSUS)
    edit = edit_config(cfg, {"epochs": 2})
    assert 'PARAMS = {"epochs": 2}' in edit.text and not edit.new_file


def test_an_expression_goes_to_a_new_file_beside(make_config, census_like) -> None:
    cfg = _cfg(make_config, census_like, TINY_CENSUS)  # epochs=params.epochs
    edit = edit_config(cfg, {"learner.epochs": 2}, label="agent3")
    assert edit.new_file and edit.path == cfg.resolve().with_name("cfg.agent3.py")
    assert "epochs=2" in edit.text and edit.notes


def test_unknown_node_is_an_error(make_config, census_like) -> None:
    with pytest.raises(ConfigError, match="no node 'nosuch'"):
        edit_config(_cfg(make_config, census_like), {"nosuch.l2": 1.0})
