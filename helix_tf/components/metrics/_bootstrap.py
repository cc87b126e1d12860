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
# Row indices drawn, gathered and counted at once within a block: ~1 MB, held in the cache.
_CACHED_DRAWS = 131_072

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


def _draw_counts(
    counts: np.ndarray,
    samples: int,
    rng: np.random.Generator,
    groups: np.ndarray | None = None,
) -> Iterator[Counts]:
    """Yield blocks of bootstrap counts: each row is how often each category was drawn.

    Drawing n rows with replacement from rows with these category counts makes the
    drawn counts multinomial(n, counts / n), so a row of counts is drawn directly
    when there are few categories, and from drawn row indices otherwise.

    ``groups`` (one per category: 0, then each the one before or one more): a row holds
    a count per group, the summed counts of its categories. The rows drawn are the same
    whatever the groups (the same random numbers: a group's count is the sum of its
    categories' counts without groups), and fewer columns cost less to count and read.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n, size = int(counts.sum()), len(counts)
    width = size if groups is None or not size else int(groups[-1]) + 1
    if n == 0:
        yield np.zeros((samples, width), dtype=np.int64)
        return
    if size <= _MAX_MULTINOMIAL_CATEGORIES:
        yield _group_counts(rng.multinomial(n, counts / n, size=samples), groups)
        return
    column = np.arange(size, dtype=np.intp) if groups is None else np.asarray(groups, np.intp)
    category_of_row = np.repeat(column, counts)
    index_type = np.int32 if n < 2**31 else np.int64
    block = max(1, _CHUNK_DRAWS // n)
    # Each block is counted in slices of a few resamples whose draws stay in the cache
    # (the same draws in the same order: the generator's stream does not depend on how
    # its numbers are requested); np.take gathers (~2x faster than indexing with int32
    # indices) the categories as the platform's integer, which bincount reads as they are.
    step = max(1, min(block, _CACHED_DRAWS // n))
    offsets = np.arange(step, dtype=np.intp)[:, np.newaxis] * width
    for start in range(0, samples, block):
        b = min(block, samples - start)
        out = np.empty((b, width), dtype=np.int64)
        for first in range(0, b, step):
            k = min(step, b - first)
            drawn = np.take(category_of_row, rng.integers(0, n, size=(k, n), dtype=index_type))
            drawn += offsets[:k]
            out[first : first + k] = np.bincount(drawn.ravel(), minlength=k * width).reshape(
                k, width
            )
        yield out


def _group_counts(counts: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Counts per category (the last axis) summed per group (see :func:`_draw_counts`)."""
    if groups is None or not len(groups):
        return counts
    starts = np.flatnonzero(np.diff(groups, prepend=-1))
    return np.add.reduceat(counts, starts, axis=-1)


def _percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan: the interval is nan
        low, high = np.nanquantile(np.asarray(draws, dtype=np.float64), [alpha, 1 - alpha])
    return float(low), float(high)
