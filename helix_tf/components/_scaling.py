"""Standardising numbers whatever their size: ``(x - mean) / std`` and a mean and
standard deviation that stay finite for every finite input (a numeric feature's transform,
a regression target's scale while training). Numpy only: the server's trainer imports it.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["power_of_two", "standardized", "target_spread"]


def standardized(x: np.ndarray, mean: float, std: float, residual: float = 0.0) -> np.ndarray:
    """``(x - mean - residual) / std`` in float64 (``residual``: what rounding left out of
    the mean, or 0), finite for finite ``x``, ``mean`` and ``std``: where ``x - mean`` is
    past float64's range (``1e308 - -1e308``) each term is divided first."""
    with np.errstate(over="ignore"):
        z = (np.asarray(x, dtype=np.float64) - mean) / std
    over = np.isinf(z) & np.isfinite(x)
    if math.isfinite(mean) and over.any():
        z[over] = np.asarray(x, dtype=np.float64)[over] / std - mean / std
    if residual:
        z -= residual / std
    return z


#: Above 2**500 a target's squares may pass float64's range: the statistics are computed
#: on the values divided by a power of two (exact, the same bits), then multiplied back.
_WIDE = 2.0**500


def power_of_two(values: np.ndarray) -> float:
    """1, or the power of two above the largest |value| where that is past ``_WIDE``."""
    biggest = float(np.abs(values).max()) if len(values) else 0.0
    return 1.0 if biggest <= _WIDE else math.ldexp(1.0, math.frexp(biggest)[1])


def target_spread(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (1 if 0) of finite ``values`` in float64, finite however
    large they are: the float formulas (``np.mean``, ``np.std``) on the values scaled by a
    power of two past 2**500 (a target of 1e200 had std inf: every target 0)."""
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return 0.0, 1.0
    scale = power_of_two(v)
    v = v / scale if scale != 1.0 else v
    mean, std = float(np.mean(v)) * scale, float(np.std(v)) * scale
    return mean, (std if std > 0 else 1.0)
