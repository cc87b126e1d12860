"""helix_tf.testing catches the mistakes it is there to catch."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from helix_tf import features as F
from helix_tf.components.base import normalized
from helix_tf.components.features import Analyzer, Feature, Input
from helix_tf.testing import (
    check_fingerprints,
    check_spec_round_trip,
    feature_fingerprint,
    transform_table,
)
from helix_tf.types import NUMERIC

COLUMNS = {"x": "float", "y": "float"}


@dataclasses.dataclass(frozen=True)
class Shift(Feature):
    """x + by; ``sloppy`` claims ``by`` cannot change the output (a wrong inert_params)."""

    ACCEPTS: ClassVar[tuple[str, ...]] = (NUMERIC,)
    column: Input
    _: dataclasses.KW_ONLY
    by: float = 1.0
    sloppy: bool = False

    def inputs(self) -> tuple[Input, ...]:
        return (self.column,)

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return NUMERIC

    def inert_params(self) -> set[str]:
        return {"by"} if self.sloppy else set()

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        return np.asarray(values[0], dtype=np.float32) + self.by


#: Another value in every process that imports this module, the same within one.
_PROCESS_SALT = uuid.uuid4().hex


@dataclasses.dataclass(frozen=True)
class Salted(Shift):
    """Fingerprints a value that differs between processes (drawn when the module is
    imported; the process id, which this once read, is refused as a varying read since
    QA pass 7)."""

    def fingerprint_params(self) -> dict[str, Any]:
        return {**super().fingerprint_params(), "salt": _PROCESS_SALT}


@dataclasses.dataclass(frozen=True)
class Hashed(Shift):
    """Reads the process's string-hash seed (``hash()``): never reused, and said so."""

    def fingerprint_params(self) -> dict[str, Any]:
        return {**super().fingerprint_params(), "salt": hash("helix")}


@dataclasses.dataclass(frozen=True)
class Suffixed(Shift):
    """A normaliser that is not idempotent: rebuilding from params() changes the column."""

    column: Input = normalized(lambda c: f"{c}_")


def make_shift() -> Shift:
    return Shift("x")


def make_sloppy() -> Shift:
    return Shift("x", sloppy=True)


def make_salted() -> Salted:
    return Salted("x")


def make_hashed() -> Hashed:
    return Hashed("x")


def test_round_trip_accepts_the_built_in_features() -> None:
    for op in (
        F.Vocabulary("a", top_k=3),
        F.Cross(["a", "b"], buckets=7),
        F.Tokenize("t", ngrams=[1, 2]),
        F.Udf(len, output="numeric", files=[]),
    ):
        assert check_spec_round_trip(op) == op


def test_round_trip_catches_a_normaliser_that_is_not_idempotent() -> None:
    with pytest.raises(AssertionError, match=r"does not rebuild .*column"):
        check_spec_round_trip(Suffixed("x"))


def test_fingerprints_pass_for_a_sound_operator() -> None:
    fp = check_fingerprints(make_shift, COLUMNS, changes={"column": "y", "by": 2.0, "sloppy": True})
    assert fp == feature_fingerprint(Shift("x"), COLUMNS)


def test_fingerprints_require_a_change_for_every_parameter() -> None:
    with pytest.raises(AssertionError, match="missing: by, sloppy"):
        check_fingerprints(make_shift, COLUMNS, changes={"column": "y"})


def test_fingerprints_catch_a_parameter_that_does_not_change_them() -> None:
    with pytest.raises(AssertionError, match=r"changing by of .* keeps its fingerprint"):
        check_fingerprints(
            make_sloppy, COLUMNS, changes={"column": "y", "by": 2.0, "sloppy": False}
        )


def test_fingerprints_catch_a_value_that_differs_between_processes() -> None:
    with pytest.raises(AssertionError, match="in a fresh process"):
        check_fingerprints(make_salted, COLUMNS, changes={"column": "y", "by": 2.0, "sloppy": True})


def test_fingerprints_name_why_an_operator_is_never_reused() -> None:
    with pytest.raises(AssertionError, match=r"recomputed every run.*calls hash\("):
        check_fingerprints(make_hashed, COLUMNS, changes={"column": "y", "by": 2.0, "sloppy": True})


def test_fingerprints_need_an_importable_factory() -> None:
    with pytest.raises(AssertionError, match="cannot be imported in another process"):
        check_fingerprints(
            lambda: Shift("x"), COLUMNS, changes={"column": "y", "by": 2, "sloppy": True}
        )


class _Sets(Analyzer):
    def create(self) -> set[str]:
        return set()

    def add(self, acc: set[str], values: list[Any]) -> set[str]:
        return acc | {str(v) for v in values[0].to_pylist()}

    def merge(self, accs: Sequence[set[str]]) -> set[str]:
        return set().union(*accs)

    def finalize(self, acc: set[str]) -> set[str]:
        return acc  # not JSON: a stored state could not be written


@dataclasses.dataclass(frozen=True)
class Seen(Feature):
    column: Input
    _: dataclasses.KW_ONLY
    short: bool = False

    def inputs(self) -> tuple[Input, ...]:
        return (self.column,)

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return NUMERIC

    def analyzer(self) -> Analyzer | None:
        return _Sets()

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        return np.zeros(n - 1 if self.short else n, dtype=np.float32)


def test_transform_table_runs_the_analyzer_in_batches_and_merges() -> None:
    table = pd.DataFrame({"t": ["b", "a", "b", None, "c"]})
    out = transform_table(F.Vocabulary("t"), table, batch_rows=2)
    assert out.tolist() == [0, 2, 0, 1, 3]  # by count then text; missing first of equals


def test_transform_table_refuses_a_state_that_is_not_json() -> None:
    with pytest.raises(AssertionError, match="not JSON-serialisable"):
        transform_table(Seen("t"), pd.DataFrame({"t": ["a"]}))


def test_transform_table_refuses_a_wrong_number_of_values() -> None:
    with pytest.raises(AssertionError, match="returned 1 values for 2 rows"):
        transform_table(_Plain("t", short=True), pd.DataFrame({"t": ["a", "b"]}))


@dataclasses.dataclass(frozen=True)
class _Plain(Seen):
    def analyzer(self) -> Analyzer | None:
        return None


def test_transform_table_gives_a_udf_whole_rows_with_typed_columns() -> None:
    table = pd.DataFrame({"n": [1, 2], "s": ["a", "b"]})
    out = transform_table(F.Udf(lambda row: row["n"] * 10 + len(row["s"])), table)
    assert out.tolist() == [11.0, 21.0]
