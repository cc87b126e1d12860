"""Process-wide library settings a config sets when it is imported join the fingerprints
(QA pass 14).

``decimal.getcontext().prec = 6`` at the top of a config changes what every ``Decimal`` a
UDF computes with rounds to, and ``np.set_printoptions(precision=3)`` the text of an
array a UDF formats; neither is a value the UDF reads by name. An edit of either between
runs reused results computed under the old setting. Unset (the libraries' defaults),
fingerprints are what they were.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator

import numpy as np
import pytest

from helix_tf.compiler._runtime import process_settings, runtime_identity


@pytest.fixture
def decimal_context() -> Iterator[None]:
    saved, default = decimal.getcontext().copy(), decimal.DefaultContext.copy()
    yield
    decimal.setcontext(saved)
    decimal.DefaultContext.prec = default.prec
    decimal.DefaultContext.rounding = default.rounding


def test_defaults_add_nothing() -> None:
    assert process_settings() == {}
    assert "process" not in runtime_identity("preprocess")


@pytest.mark.usefixtures("decimal_context")
def test_a_decimal_context_set_by_the_config_joins_every_stage() -> None:
    before = runtime_identity("preprocess")
    decimal.getcontext().prec = 6
    six = runtime_identity("preprocess")
    decimal.getcontext().prec = 10
    ten = runtime_identity("preprocess")
    assert len({repr(before), repr(six), repr(ten)}) == 3
    assert six["process"] == {"decimal": {"prec": 6}}
    decimal.getcontext().prec = 28
    decimal.DefaultContext.rounding = decimal.ROUND_DOWN  # what new threads start with
    assert runtime_identity("train")["process"] == {"decimal threads": {"rounding": "ROUND_DOWN"}}


def test_numpy_print_options_join_while_set() -> None:
    with np.printoptions(precision=3, suppress=True):
        assert process_settings() == {"numpy print": {"precision": 3, "suppress": True}}
    assert process_settings() == {}
