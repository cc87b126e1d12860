"""Process-wide library settings a config sets when it is imported join the fingerprints
(QA pass 14).

``decimal.getcontext().prec = 6`` at the top of a config changes what every ``Decimal`` a
UDF computes with rounds to, and ``np.set_printoptions(precision=3)`` the text of an
array a UDF formats; neither is a value the UDF reads by name. An edit of either between
runs reused results computed under the old setting. Unset (the libraries' defaults),
fingerprints are what they were. QA pass 17: pandas' options (``pd.set_option(
"display.precision", 2)`` changes a frame's text, ``future.*`` what operations return) and
the locale's categories (``locale.setlocale(locale.LC_NUMERIC, ...)`` changes
``locale.atof``) were left out the same way.
"""

from __future__ import annotations

import decimal
import locale
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
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


def test_pandas_options_join_while_set() -> None:
    text = str(pd.Series([1 / 7]))
    with pd.option_context("display.precision", 2):
        two = process_settings()
        assert two == {"pandas options": {"display.precision": 2}}
        assert str(pd.Series([1 / 7])) != text  # what a UDF formatting a frame computes
        assert runtime_identity("preprocess")["process"] == two
    with pd.option_context("display.precision", 4):
        assert process_settings() == {"pandas options": {"display.precision": 4}}
    assert process_settings() == {}


def test_a_pandas_float_format_joins_by_its_code() -> None:
    with pd.option_context("display.float_format", "{:.2f}".format):
        two = process_settings()
    with pd.option_context("display.float_format", "{:.3f}".format):
        three = process_settings()
    with pd.option_context("display.float_format", "{:.2f}".format):
        assert process_settings() == two  # another object, the same format: the same
    assert two != three and set(two["pandas options"]) == {"display.float_format"}


@pytest.fixture
def numeric_locale() -> Iterator[None]:
    saved = locale.setlocale(locale.LC_NUMERIC)
    yield
    locale.setlocale(locale.LC_NUMERIC, saved)


@pytest.mark.usefixtures("numeric_locale")
def test_a_locale_the_config_sets_joins() -> None:
    try:
        locale.setlocale(locale.LC_NUMERIC, "C.UTF-8")
    except locale.Error:
        pytest.skip("no C.UTF-8 locale on this machine")
    assert process_settings() == {"locale": {"LC_NUMERIC": "C.UTF-8"}}
    locale.setlocale(locale.LC_NUMERIC, "C")
    assert process_settings() == {}


def test_numpy_error_handling_joins_while_set() -> None:
    """``np.seterr(divide="raise")`` turns a value (``-inf``) into a failed run."""
    with np.errstate(divide="raise"):
        assert process_settings() == {"numpy errors": {"divide": "raise"}}
    assert process_settings() == {}


ACCESSOR = """
import pandas as pd


@pd.api.extensions.register_series_accessor("{name}")
class Scaled:
    def __init__(self, series):
        self._series = series

    def times(self):
        return self._series * {factor}


def doubled(self):
    return self * {factor}


pd.DataFrame.{name}_doubled = doubled
"""


def test_code_of_ones_own_on_pandas_classes_joins_by_its_code(load) -> None:
    """An accessor or a method a helper puts on pandas' classes is reached from a batch, a
    value known only when a UDF runs: its code joins every fingerprint (QA pass 17; an edit
    of it kept them all). A UDF reading ``batch["x"].qa17.times()`` shows nothing of it."""
    name = "qa17_extension"
    assert process_settings() == {}
    try:
        load(ACCESSOR.replace("{name}", name).replace("{factor}", "2"))
        two = process_settings()["library extensions"]
        assert set(two) == {f"pandas.Series.{name}", f"pandas.DataFrame.{name}_doubled"}
        assert pd.Series([1.0]).__getattr__(name).times().tolist() == [2.0]
        with warnings.catch_warnings():  # pandas: "overriding a preexisting attribute"
            warnings.simplefilter("ignore", UserWarning)
            load(ACCESSOR.replace("{name}", name).replace("{factor}", "3"))
        three = process_settings()["library extensions"]
        assert all(two[k] != three[k] for k in two)
    finally:
        delattr(pd.Series, name)
        delattr(pd.DataFrame, f"{name}_doubled")
        pd.Series._accessors.discard(name)
    assert process_settings() == {}
