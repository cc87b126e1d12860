"""Bootstrap resampling: counts per category drawn at once, and percentile intervals."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterator

import numpy as np

from helix_tf.errors import ConfigError

# Up to this many categories a resample's counts come from one multinomial draw;
# above it, from drawing row indices (multinomial sampling is O(categories) per draw).
_MAX_MULTINOMIAL_CATEGORIES = 64
# Row indices drawn at once when resampling many categories (fastest here; ~8 MB per array).
_CHUNK_DRAWS = 1_000_000

Counts = np.ndarray  # shape (samples, categories): how often each category was drawn


def _check_bootstrap_args(samples: int, seed: int, level: float) -> None:
    problems = []
    if isinstance(samples, bool) or not isinstance(samples, numbers.Integral) or samples < 1:
        problems.append(f"samples must be an integer >= 1, but got {samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        problems.append(f"seed must be an integer >= 0, but got {seed!r}")
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        problems.append(f"level must be in (0, 1), but got {level!r}")
    if problems:
        raise ConfigError(problems)


def _draw_counts(counts: np.ndarray, samples: int, rng: np.random.Generator) -> Iterator[Counts]:
    """Yield blocks of bootstrap counts: each row is how often each category was drawn.

    Drawing n rows with replacement from rows with these category counts makes the
    drawn counts multinomial(n, counts / n), so a row of counts is drawn directly
    when there are few categories, and from drawn row indices otherwise.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n, size = int(counts.sum()), len(counts)
    if n == 0:
        yield np.zeros((samples, size), dtype=np.int64)
        return
    if size <= _MAX_MULTINOMIAL_CATEGORIES:
        yield rng.multinomial(n, counts / n, size=samples)
        return
    category_of_row = np.repeat(np.arange(size, dtype=np.int64), counts)
    index_type = np.int32 if n < 2**31 else np.int64
    block = max(1, _CHUNK_DRAWS // n)
    for start in range(0, samples, block):
        b = min(block, samples - start)
        drawn = category_of_row[rng.integers(0, n, size=(b, n), dtype=index_type)]
        drawn += (np.arange(b, dtype=np.int64) * size)[:, np.newaxis]
        yield np.bincount(drawn.ravel(), minlength=b * size).reshape(b, size)


def _percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan: the interval is nan
        low, high = np.nanquantile(np.asarray(draws, dtype=np.float64), [alpha, 1 - alpha])
    return float(low), float(high)
