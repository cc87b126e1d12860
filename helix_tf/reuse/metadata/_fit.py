"""The load-cost model: throughput and latency fitted to measured artifact loads."""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Loads smaller than this say nothing about throughput (they measure latency).
MIN_THROUGHPUT_BYTES = 256_000


def fit_load_throughput(
    samples: Sequence[tuple[int, float]],
    *,
    default: float = 200e6,
    default_latency: float = 0.01,
    min_samples: int = 5,
) -> tuple[float, float]:
    """Fit ``seconds = latency + bytes / throughput`` robustly to measured loads.

    The latency is the intercept of Tukey's resistant line (medians of the smallest
    and largest thirds by size), clipped to ``[0, 10th percentile of seconds]``; it is
    0 when the sizes are too alike to tell latency from throughput. The throughput is
    the median of ``bytes / (seconds - latency)``. Outliers (a cold cache, a stalled
    request) move neither.

    Parameters
    ----------
    samples
        ``(bytes, seconds)`` of past loads; pairs without positive values are ignored.
    default, default_latency
        Returned when fewer than ``min_samples`` usable samples remain.

    Returns
    -------
    tuple of float
        ``(bytes per second, latency in seconds)``.

    Examples
    --------
    >>> loads = [(n * 1_000_000, 0.05 + n * 0.01) for n in range(1, 11)]
    >>> throughput, latency = fit_load_throughput(loads)
    >>> round(throughput / 1e6), round(latency, 3)
    (100, 0.05)
    """
    points = sorted((float(b), float(s)) for b, s in samples if b > 0 and s > 0)
    if len(points) < min_samples:
        return default, default_latency
    third = max(1, len(points) // 3)
    small, large = points[:third], points[-third:]
    x_small, x_large = _median([b for b, _ in small]), _median([b for b, _ in large])
    seconds = sorted(s for _, s in points)
    floor = seconds[int(0.1 * (len(seconds) - 1))]
    # Sizes too alike to separate latency from throughput: large loads are mostly
    # throughput, small ones mostly latency.
    latency = 0.0 if x_large >= MIN_THROUGHPUT_BYTES else floor
    if x_large >= 1.5 * x_small:
        slope = (_median([s for _, s in large]) - _median([s for _, s in small])) / (
            x_large - x_small
        )
        if slope > 0:
            intercept = _median([s - slope * b for b, s in points])
            latency = min(max(intercept, 0.0), floor)
    # Throughput only from the largest loads: small ones are latency-bound and would
    # make the store look slow (a metrics file of 89 bytes read in 0.3 ms is not 300 KB/s).
    if x_large < MIN_THROUGHPUT_BYTES:
        return default, latency
    rates = [b / (s - latency) for b, s in (large if len(large) >= 3 else points) if s > latency]
    if not rates:
        return default, latency
    throughput = _median(rates)
    if not math.isfinite(throughput) or throughput <= 0:
        return default, default_latency
    return throughput, latency


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
