"""A parameter written in a config with a value of the wrong type is refused when the
operator is built, as the same value given by ``-p`` is (QA pass 9).

Before this pass the type of a plain parameter (a boolean, an integer, a number, a
string) was checked only for ``-p node.param=value``: ``F.Numeric("age",
standardize="no")`` in the config built an operator whose ``standardize`` was the
string ``'no'``, which is true, and the run standardised without a word.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helix_tf import features as F, learners, sources
from helix_tf.components.base import Operator
from helix_tf.errors import ConfigError

WRONG: dict[str, tuple[Callable[[], Any], str]] = {
    "boolean-as-text": (
        lambda: F.Numeric("age", standardize="no"),
        r"Numeric: parameter 'standardize' expects a boolean \(True/False\), but got 'no' "
        r"\(a str\)",
    ),
    "boolean-as-text-in-a-source": (
        lambda: sources.Csv(train="a.csv", columns={"a": "int"}, header="yes"),
        r"Csv: parameter 'header' expects a boolean",
    ),
    "boolean-as-integer": (
        lambda: F.Tokenize("text", lower=0),
        r"Tokenize: parameter 'lower' expects a boolean \(True/False\), but got 0",
    ),
    "integer-as-text": (
        lambda: learners.Linear(seed="1"),
        r"Linear: parameter 'seed' expects an integer, but got '1' \(a str\)",
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_a_value_of_the_wrong_type_is_refused_when_built(case: str) -> None:
    build, pattern = WRONG[case]
    with pytest.raises(ConfigError, match=pattern):
        build()


RIGHT: dict[str, Callable[[], Operator]] = {
    "integer-for-a-number": lambda: learners.Linear(l1=0, learning_rate=1),
    "none-where-allowed": lambda: sources.Csv(
        train="a.csv", columns={"a": "int"}, test_fraction=None
    ),
    "numpy-scalars": lambda: learners.Linear(seed=__import__("numpy").int64(3)),
}


@pytest.mark.parametrize("case", sorted(RIGHT))
def test_values_that_fit_their_parameter_are_accepted(case: str) -> None:
    assert isinstance(RIGHT[case](), Operator)


def test_a_problem_validate_names_keeps_its_own_message() -> None:
    """validate() runs first: its message (the rule and the value) is the one shown."""
    with pytest.raises(ConfigError, match=r"Linear: epochs must be an integer >= 1, but got 2\.0"):
        learners.Linear(epochs=2.0)


def test_a_number_parameter_given_an_integer_holds_the_float_it_means() -> None:
    """``l1=0`` and ``l1=0.0`` (or ``-p learner.learning_rate=1``) are one computation:
    the same parameters, so the same fingerprint (before: two, and a needless retrain)."""
    as_int = learners.Linear(l1=0, learning_rate=1)
    assert type(as_int.l1) is float and type(as_int.learning_rate) is float
    assert as_int.params() == learners.Linear(l1=0.0, learning_rate=1.0).params()
    assert type(
        sources.Csv(train="a.csv", columns={"a": "int"}, test_fraction=None).test_fraction
    ) is type(None)
    # int fields stay integers; True is no number
    assert type(learners.Linear(epochs=3).epochs) is int
    with pytest.raises(ConfigError):
        learners.Linear(l1=True)


def test_an_integer_for_a_number_keeps_the_fingerprint(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    from helix_tf.compiler.content import ContentHasher
    from helix_tf.compiler.graph import compile_workflow
    from helix_tf.config import load_config
    from tests.conftest import TINY_CENSUS, write_config

    path = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])

    def learner(*overrides: str) -> str:
        loaded = load_config(path, overrides)
        compiled = compile_workflow(loaded.workflow, hasher=ContentHasher(tmp_path / "memo"))
        return compiled.node("learner").fingerprint

    assert learner("learner.learning_rate=1") == learner("learner.learning_rate=1.0")
    assert learner("learner.l2=0") == learner()  # the default is 0.0
