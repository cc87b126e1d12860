"""Metrics of regressions: RMSE, MAE, R², MAPE and a summary of the residuals.

Conventions: ``y_true`` and ``y_score`` are finite numbers (the label and the
prediction) on the label's original scale. ``scale`` names the label's transform
(e.g. ``"log"``) to compute a metric on that scale instead; its keys then end in
``@log`` (``"r2@log"``). The engine hands each metric the values on its scale.

Every regression metric is a function of per-row quantities (errors, values), so
for bootstraps the rows themselves are the categories: a resample is a vector of
per-row counts, and each metric is a weighted sum over rows (quantiles: weighted
order statistics), computed for all resamples at once.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from helix_tf.components._scaling import power_of_two
from helix_tf.components.metrics._base import Metric, _as_vector, _same_length, _Tally
from helix_tf.components.metrics._classification import _ratio
from helix_tf.errors import DataError

__all__ = ["RMSE", "MAE", "R2", "MAPE", "Residuals", "ORIGINAL_SCALE"]

#: ``scale`` of a metric computed on the label's original values.
ORIGINAL_SCALE = "original"


@dataclasses.dataclass(frozen=True, kw_only=True)
class _RegressionMetric(Metric):
    """Base of regression metrics: finite labels and predictions, a scale, per-row tallies."""

    TASKS: ClassVar[tuple[str, ...]] = ("regression",)
    NAME: ClassVar[str] = ""
    #: How the values follow the data's unit: 1 (an error: RMSE, MAE, residuals), 0 (a
    #: ratio: R²), None (MAPE: its floor is in the data's unit). Past 2**500, errors'
    #: squares pass float64's range: the values are divided by a power of two (exact) and
    #: what depends on the unit multiplied back (``_tally``).
    UNIT_POWER: ClassVar[int | None] = 1
    #: "original", or the name of the label's transform ("log", ...) to use that scale.
    scale: str = ORIGINAL_SCALE

    def validate(self) -> list[str]:
        problems = super().validate()
        if not isinstance(self.scale, str) or not self.scale:
            problems.append(
                f"scale must be 'original' or the label's transform (e.g. 'log'), "
                f"but got {self.scale!r}"
            )
        return problems

    @property
    def _at(self) -> str:
        return "" if self.scale == ORIGINAL_SCALE else f"@{self.scale}"

    def keys(self) -> tuple[str, ...]:
        return (f"{self.NAME}{self._at}",)

    def _check_arrays(self, y_true: Any, y_score: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
        y = _as_vector(y_true, "y_true", who)
        s = _as_vector(y_score, "y_score", who)
        _same_length(y, s, who)
        for name, v in (("y_true", y), ("y_score", s)):
            if not np.issubdtype(v.dtype, np.number) or np.issubdtype(v.dtype, np.complexfloating):
                raise DataError(f"{who}: {name} must be numbers, but got dtype {v.dtype}")
            bad = ~np.isfinite(v.astype(np.float64))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{who}: {name} must be finite numbers, but got {v[row].item()!r} at row "
                    f"{row} ({int(bad.sum())} such rows)"
                )
        return y.astype(np.float64), s.astype(np.float64)

    def _tally(self, y_true: np.ndarray, y_score: np.ndarray) -> _Tally:
        unit = 1.0
        if self.UNIT_POWER is not None and len(y_true):
            unit = power_of_two(np.concatenate([y_true, y_score]))
        y, s = (y_true, y_score) if unit == 1.0 else (y_true / unit, y_score / unit)
        factor = unit ** (self.UNIT_POWER or 0)

        def finish(draws: Any) -> dict[str, np.ndarray]:
            values = self._weighted(np.asarray(draws, np.float64), y, s)
            return values if factor == 1.0 else {k: v * factor for k, v in values.items()}

        return _Tally(counts=np.ones(len(y_true), dtype=np.int64), finish=finish)

    def _weighted(self, w: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        """Values per resample from per-row weights ``w`` (samples, rows)."""
        raise NotImplementedError


def _mean(w: np.ndarray, values: np.ndarray) -> np.ndarray:
    return _ratio(w @ values, w.sum(axis=1), math.nan)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RMSE(_RegressionMetric):
    """Root mean squared error, ``sqrt(mean((y - ŷ)²))`` (key ``"rmse"``).

    Examples
    --------
    >>> RMSE().compute([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    {'rmse': 1.1547005383792515}
    """

    NAME: ClassVar[str] = "rmse"
    #: 2: errors past 1.3e154 give their RMSE, not inf (their squares overflowed; QA 23).
    #: 3: slice keys as Metric's VERSION 2 writes them (``<missing>``, whole numbers).
    VERSION: ClassVar[int] = 3

    def _weighted(self, w: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        return {self.keys()[0]: np.sqrt(_mean(w, (y - s) ** 2))}


@dataclasses.dataclass(frozen=True, kw_only=True)
class MAE(_RegressionMetric):
    """Mean absolute error, ``mean(|y - ŷ|)`` (key ``"mae"``)."""

    NAME: ClassVar[str] = "mae"
    #: 2: labels and predictions of opposite signs past 9e307 give their MAE, not inf.
    #: 3: slice keys as Metric's VERSION 2 writes them (``<missing>``, whole numbers).
    VERSION: ClassVar[int] = 3

    def _weighted(self, w: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        return {self.keys()[0]: _mean(w, np.abs(y - s))}


@dataclasses.dataclass(frozen=True, kw_only=True)
class R2(_RegressionMetric):
    """Coefficient of determination, ``1 - Σ(y - ŷ)² / Σ(y - ȳ)²`` (key ``"r2"``).

    nan when every label is the same (no variance to explain).
    """

    NAME: ClassVar[str] = "r2"
    UNIT_POWER: ClassVar[int | None] = 0
    #: 2: labels past 1.3e154 give their R², not nan (inf / inf; QA pass 23).
    #: 3: slice keys as Metric's VERSION 2 writes them (``<missing>``, whole numbers).
    VERSION: ClassVar[int] = 3

    def _weighted(self, w: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        total = w.sum(axis=1)
        sse = w @ ((y - s) ** 2)
        # Σw(y - ȳ)² computed around the overall mean (shifting keeps it accurate).
        c = y - y.mean() if len(y) else y
        sst = w @ (c * c) - _ratio((w @ c) ** 2, total, 0.0)
        sst = np.where(sst > 1e-12 * np.maximum(w @ (c * c), 1e-300), sst, 0.0)
        return {self.keys()[0]: 1 - _ratio(sse, sst, math.nan)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class MAPE(_RegressionMetric):
    """Mean absolute percentage error, ``mean(|y - ŷ| / |y|)``, as a fraction (key ``"mape"``).

    As in scikit-learn, ``|y|`` is floored at the float64 machine epsilon, so a
    zero label gives a huge (not infinite) term.
    """

    NAME: ClassVar[str] = "mape"
    UNIT_POWER: ClassVar[int | None] = None

    def _weighted(self, w: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        eps = np.finfo(np.float64).eps
        return {self.keys()[0]: _mean(w, np.abs(y - s) / np.maximum(np.abs(y), eps))}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Residuals(_RegressionMetric):
    """A summary of the residuals ``y - ŷ``: mean, standard deviation and quantiles.

    Keys ``"residual/mean"``, ``"residual/std"`` (population) and
    ``"residual/p05"``, ``p25``, ``p50``, ``p75``, ``p95``: the smallest residual
    with at least that fraction of the rows at or below it (numpy's
    ``method="inverted_cdf"``).
    """

    NAME: ClassVar[str] = "residual"
    #: 2: residuals past 1.3e154 give their standard deviation, not inf (QA pass 23).
    #: 3: slice keys as Metric's VERSION 2 writes them (``<missing>``, whole numbers).
    VERSION: ClassVar[int] = 3
    QUANTILES: ClassVar[tuple[int, ...]] = (5, 25, 50, 75, 95)

    def keys(self) -> tuple[str, ...]:
        names = ["mean", "std", *(f"p{q:02d}" for q in self.QUANTILES)]
        return tuple(f"residual{self._at}/{n}" for n in names)

    def _weighted(self, w: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
        r = y - s
        keys = self.keys()
        mean = _mean(w, r)
        centred = r[np.newaxis, :] - mean[:, np.newaxis] if len(r) else np.zeros_like(w)
        var = _ratio((w * centred * centred).sum(axis=1), w.sum(axis=1), math.nan)
        out = {keys[0]: mean, keys[1]: np.sqrt(var)}
        order = np.argsort(r, kind="stable")
        sorted_r = r[order]
        cum = np.cumsum(w[:, order], axis=1)
        total = cum[:, -1] if cum.shape[1] else np.zeros(len(w))
        for key, q in zip(keys[2:], self.QUANTILES, strict=True):
            if not len(r):
                out[key] = np.full(len(w), math.nan)
                continue
            # First position whose cumulative weight reaches q% of the total.
            target = total * (q / 100)
            pos = (cum < target[:, np.newaxis] - 1e-9 * np.maximum(total, 1)[:, None]).sum(axis=1)
            value = sorted_r[np.minimum(pos, len(r) - 1)]
            out[key] = np.where(total > 0, value, math.nan)
        return out
