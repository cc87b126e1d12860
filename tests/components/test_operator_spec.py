"""Operator specs are plain dataclasses that always normalise and validate.

A spec may not write ``__init__`` or ``__post_init__`` (one that forgot to validate
went unnoticed before); constructors keep their calling conventions (first
parameters positional); ``Feature``, ``Analyzer`` and ``Metric`` are abstract.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from helix_tf import features as F, learners, metrics, sources
from helix_tf.components.base import Operator, normalized
from helix_tf.components.explain import Explain
from helix_tf.components.features import Analyzer, Feature, Input
from helix_tf.errors import ConfigError


def test_a_spec_that_writes_its_own_init_is_refused() -> None:
    with pytest.raises(TypeError, match=r"defines __init__.*no spec skips its checks"):

        @dataclasses.dataclass(frozen=True)
        class Scaled(Operator):
            column: str

            def __init__(self, column: str) -> None:
                object.__setattr__(self, "column", column)  # validate() never runs


def test_a_spec_that_writes_post_init_is_refused() -> None:
    with pytest.raises(TypeError, match="defines __post_init__"):

        @dataclasses.dataclass(frozen=True)
        class Scaled(Operator):
            column: str

            def __post_init__(self) -> None:  # forgets super().__post_init__()
                pass


@dataclasses.dataclass(frozen=True)
class _Pair(Operator):
    names: tuple[str, ...] = normalized(tuple)
    _: dataclasses.KW_ONLY
    weight: float = 1.0

    def validate(self) -> list[str]:
        if not isinstance(self.names, tuple) or len(self.names) != 2:
            return [f"names must be two column names, but got {self.names!r}"]
        return []


def test_normalised_fields_are_normalised_then_validated_on_every_construction() -> None:
    pair = _Pair(["a", "b"], weight=2.0)
    assert pair.names == ("a", "b") and pair.params() == {"names": ("a", "b"), "weight": 2.0}
    assert pair.with_params(names=["c", "d"]).names == ("c", "d")
    with pytest.raises(ConfigError, match="names must be two column names"):
        pair.with_params(names=["c"])
    with pytest.raises(ConfigError, match="but got 5"):  # not iterable: kept for validate()
        _Pair(5)
    with pytest.raises(TypeError):  # weight is keyword-only
        _Pair(["a", "b"], 2.0)  # type: ignore[misc]


# (constructor, expected params): the calling conventions users' configs rely on
CALLS: list[tuple[Callable[[], Operator], dict[str, Any]]] = [
    (lambda: F.Numeric("age"), {"column": "age", "standardize": True}),
    (lambda: F.Numeric(column="age", standardize=False), {"column": "age", "standardize": False}),
    (lambda: F.Bucketize("age", [18, 25]), {"column": "age", "boundaries": (18.0, 25.0)}),
    (lambda: F.Bucketize("age", boundaries=(1,)), {"column": "age", "boundaries": (1.0,)}),
    (lambda: F.Cross(["a", "b"], buckets=9), {"columns": ("a", "b"), "buckets": 9}),
    (
        lambda: F.Vocabulary("t", top_k=3),
        {"column": "t", "min_count": 1, "top_k": 3, "oov_buckets": 1},
    ),
    (
        lambda: F.Tokenize("t", ngrams=[1, 2]),
        {"column": "t", "lower": True, "pattern": r"[^\W\d_]+", "ngrams": (1, 2)},
    ),
    (lambda: F.Label("income", ">50K"), {"column": "income", "positive": ">50K"}),
    (lambda: F.Label("y"), {"column": "y", "positive": None}),
    (
        lambda: F.MulticlassLabel("cut", classes=[1, "b"]),
        {"column": "cut", "classes": ("1", "b"), "unseen": "error"},
    ),
    (
        lambda: F.NumericLabel("price", transform="log"),
        {"column": "price", "transform": "log", "loss": "squared", "huber_delta": 1.0},
    ),
    (
        lambda: Explain(scoring="auc"),
        {"repeats": 2, "max_rows": 5000, "seed": 0, "scoring": ("auc",), "top": 10},
    ),
    (
        lambda: metrics.MulticlassAccuracy(classes=["a", 2]),
        {"slice_by": None, "classes": ("a", "2")},
    ),
]


@pytest.mark.parametrize(("make", "expected"), CALLS)
def test_constructors_keep_their_calling_conventions(
    make: Callable[[], Operator], expected: dict[str, Any]
) -> None:
    assert make().params() == expected


def test_udf_files_are_normalised() -> None:
    udf = F.Udf(len, files="a.txt")
    assert udf.files == ("a.txt",) and F.Udf(len, files=["a", "b"]).files == ("a", "b")
    ds = F.DatasetUdf(fit=len, apply=len, columns=["a"])
    assert ds.columns == ("a",) and ds.files == ()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: F.Bucketize("age", ["young"]), "boundaries must be a list of numbers"),
        (lambda: F.Bucketize("age", 30), "boundaries must be a list of numbers"),
        (lambda: F.Cross(5, buckets=2), "columns must be a list of inputs"),
        (lambda: F.Tokenize("t", ngrams=2), "ngrams must be positive integers"),
        (lambda: F.DatasetUdf(fit=len, apply=len, columns=5), "columns must name the columns"),
        (lambda: Explain(scoring=5), "scoring must name one or more"),
        (lambda: sources.Csv(train=5, columns={"a": "int"}), "train must be a path"),
    ],
)
def test_values_that_do_not_normalise_are_config_errors(
    make: Callable[[], Operator], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_every_public_operator_is_a_generated_dataclass() -> None:
    for namespace in (F, sources, metrics, learners):
        for name in namespace.__all__:
            cls = getattr(namespace, name)
            if isinstance(cls, type) and issubclass(cls, Operator):
                assert dataclasses.is_dataclass(cls), name
                assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__", name
                assert "__post_init__" not in vars(cls), name


def test_feature_analyzer_and_metric_are_abstract() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoTransform(Feature):
        column: Input

        def inputs(self) -> tuple[Input, ...]:
            return (self.column,)

        def output_kind(self, input_kinds: Sequence[str]) -> str:
            return "numeric"

    class NoFinalize(Analyzer):
        def create(self) -> Any:
            return 0

        def add(self, acc: Any, values: list[Any]) -> Any:
            return acc

        def merge(self, accs: Sequence[Any]) -> Any:
            return 0

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class NoKeys(metrics.Metric):
        pass

    with pytest.raises(TypeError, match="transform"):
        NoTransform("x")  # type: ignore[abstract]
    with pytest.raises(TypeError, match="finalize"):
        NoFinalize()  # type: ignore[abstract]
    with pytest.raises(TypeError, match="keys"):
        NoKeys()  # type: ignore[abstract]


_CSV = sources.Csv(train="a.csv", columns={"a": "int", "b": "string"})
#: A valid instance of each public operator that needs arguments.
_BUILT: dict[str, Callable[[], Operator]] = {
    "Numeric": lambda: F.Numeric("a"),
    "Bucketize": lambda: F.Bucketize("a", [1, 2]),
    "Vocabulary": lambda: F.Vocabulary("a"),
    "Cross": lambda: F.Cross(["a", "b"], buckets=10),
    "Tokenize": lambda: F.Tokenize("a"),
    "TfIdf": lambda: F.TfIdf("a"),
    "Udf": lambda: F.Udf(len),
    "DatasetUdf": lambda: F.DatasetUdf(fit=len, apply=len, columns=["a"]),
    "Label": lambda: F.Label("a", positive="x"),
    "MulticlassLabel": lambda: F.MulticlassLabel("a", classes=["x", "y"]),
    "NumericLabel": lambda: F.NumericLabel("a"),
    "Csv": lambda: _CSV,
    "Holdout": lambda: sources.Holdout(of=_CSV),
    "Parquet": lambda: sources.Parquet(train="a.parquet"),
    "TFRecord": lambda: sources.TFRecord(train="a.tfrecord", features={"a": "int"}),
    "Tfds": lambda: sources.Tfds(name="mnist", data_dir="/tmp"),
    "Custom": lambda: metrics.Custom(name="m", fn=len),
}
_ABSTRACT = {"Feature", "Source", "Metric", "Learner"}
_PUBLIC = [
    getattr(ns, name)
    for ns in (F, sources, metrics, learners)
    for name in ns.__all__
    if isinstance(getattr(ns, name), type)
    and issubclass(getattr(ns, name), Operator)
    and name not in _ABSTRACT
] + [Explain]
_ODD_VALUES = [5, 2.5, float("nan"), "x", "", None, True, [1], ["a"], {"a": 1}, (1, "a"), [[1]]]


@pytest.mark.parametrize("cls", _PUBLIC, ids=lambda c: c.__name__)
def test_any_value_of_any_parameter_is_accepted_or_a_config_error(cls: type[Operator]) -> None:
    """``-p learner.hidden=64`` (or ``DNN(hidden=64)`` in a config) crashed with ``TypeError:
    'int' object is not iterable`` from validate(): every parameter of every public operator,
    given a value of another shape, is accepted or refused naming the operator, never a
    traceback."""
    base = _BUILT[cls.__name__]() if cls.__name__ in _BUILT else cls()
    for field in dataclasses.fields(cls):
        for value in (v for v in _ODD_VALUES if field.init):
            try:
                base.with_params(**{field.name: value})
            except ConfigError as exc:
                assert cls.__name__ in str(exc), (field.name, value, str(exc))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: learners.DNN(hidden=64), r"DNN: parameter 'hidden' expects tuple\[int, \.\.\.\]"),
        (lambda: sources.Csv(train="a", columns=None), "Csv: parameter 'columns' expects"),
        (lambda: F.Bucketize("a", (1, "b")), "Bucketize: parameter 'boundaries' expects"),
        (lambda: Explain(scoring=[[1]]), r"Explain: parameter 'scoring' expects"),
    ],
)
def test_a_value_validate_cannot_read_names_its_parameter(
    make: Callable[[], Operator], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make()
