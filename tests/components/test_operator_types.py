"""A parameter written in a config with a value of the wrong type is refused when the
operator is built, as the same value given by ``-p`` is (QA pass 9).

Before this pass the type of a plain parameter (a boolean, an integer, a number, a
string) was checked only for ``-p node.param=value``: ``F.Numeric("age",
standardize="no")`` in the config built an operator whose ``standardize`` was the
string ``'no'``, which is true, and the run standardised without a word.
"""

from __future__ import annotations

from collections.abc import Callable
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
