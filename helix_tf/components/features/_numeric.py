"""Numeric features: standardised numbers, buckets and hashed crosses."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from helix_tf.components.base import normalized
from helix_tf.components.features._base import Analyzer, Feature, Input
from helix_tf.types import CATEGORICAL, NUMERIC


class _MomentsAnalyzer(Analyzer):
    def create(self) -> list[float]:
        return [0.0, 0.0, 0.0]

    def add(self, acc: list[float], values: list[Any]) -> list[float]:
        x = np.asarray(values[0], dtype=np.float64)
        x = x[~np.isnan(x)]
        return [acc[0] + len(x), acc[1] + float(x.sum()), acc[2] + float((x * x).sum())]

    def merge(self, accs: Sequence[list[float]]) -> list[float]:
        return [sum(a[i] for a in accs) for i in range(3)]

    def finalize(self, acc: list[float]) -> dict[str, float]:
        n, s, ss = acc
        if n == 0:
            return {"mean": 0.0, "std": 1.0, "count": 0}
        mean = s / n
        var = max(ss / n - mean * mean, 0.0)
        std = math.sqrt(var) or 1.0
        return {"mean": mean, "std": std, "count": int(n)}


@dataclasses.dataclass(frozen=True)
class Numeric(Feature):
    """A numeric column; standardised with mean/std of the training split by default.

    Missing values become the training mean (0 after standardisation).
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = (NUMERIC,)
    column: Input
    _: dataclasses.KW_ONLY
    standardize: bool = True

    def inputs(self) -> tuple[Input, ...]:
        return (self.column,)

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return NUMERIC

    def analyzer(self) -> Analyzer | None:
        return _MomentsAnalyzer()

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        x = np.asarray(values[0], dtype=np.float64)
        x = np.where(np.isnan(x), state["mean"], x)
        if self.standardize:
            x = (x - state["mean"]) / state["std"]
        return x.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Bucketize(Feature):
    """A numeric column cut at sorted boundaries: index i for boundaries[i-1] <= x < boundaries[i].

    Missing values get their own last index (``len(boundaries) + 1``).
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = (NUMERIC,)
    column: Input
    boundaries: Sequence[float] = normalized(lambda b: tuple(float(x) for x in b))

    def validate(self) -> list[str]:
        if not isinstance(self.boundaries, tuple):
            return [f"boundaries must be a list of numbers, but got {self.boundaries!r}"]
        b = list(self.boundaries)
        if not b:
            return ["boundaries must not be empty"]
        if b != sorted(set(b)):
            return [f"boundaries must be strictly increasing, but got {b}"]
        return []

    def inputs(self) -> tuple[Input, ...]:
        return (self.column,)

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return CATEGORICAL

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        x = np.asarray(values[0], dtype=np.float64)
        idx = np.searchsorted(np.asarray(self.boundaries), x, side="right")
        idx = np.where(np.isnan(x), len(self.boundaries) + 1, idx)
        return idx.astype(np.int32)

    def cardinality(self, state: Any) -> int | None:
        return len(self.boundaries) + 2

    def value_names(self, state: Any) -> list[str] | None:
        b = [f"{v:g}" for v in self.boundaries]
        inner = [f"[{lo}, {hi})" for lo, hi in itertools.pairwise(b)]
        return [f"< {b[0]}", *inner, f">= {b[-1]}", "<missing>"]


# --------------------------------------------------------------------------- crosses


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a deterministic, well-spread 64-bit hash."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@dataclasses.dataclass(frozen=True)
class Cross(Feature):
    """A hashed cross of categorical features into ``buckets`` indices."""

    ACCEPTS: ClassVar[tuple[str, ...]] = (CATEGORICAL,)
    columns: Sequence[Input] = normalized(tuple)
    _: dataclasses.KW_ONLY
    buckets: int

    def validate(self) -> list[str]:
        problems = []
        if not isinstance(self.columns, tuple):
            problems.append(f"columns must be a list of inputs, but got {self.columns!r}")
        elif len(self.columns) < 2:
            problems.append(f"a cross needs at least 2 inputs, but got {len(self.columns)}")
        if not isinstance(self.buckets, int) or self.buckets < 1:
            problems.append(f"buckets must be an integer >= 1, but got {self.buckets!r}")
        return problems

    def inputs(self) -> tuple[Input, ...]:
        return self.columns

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return CATEGORICAL

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        with np.errstate(over="ignore"):
            h = np.zeros(n, dtype=np.uint64)
            for v in values:
                h = _mix64(h * np.uint64(1_000_003) + np.asarray(v, dtype=np.uint64))
        return (h % np.uint64(self.buckets)).astype(np.int32)

    def cardinality(self, state: Any) -> int | None:
        return self.buckets
