"""Seeded row sampling by a hash of each row's stable id.

Every row keeps or drops itself by ``hash(row_id % COPY_STRIDE, seed) < fraction``:
the same rows are kept wherever the sample is applied (at the source, or on stored
examples), with no coordination and no shuffle. Each row is kept with the same
probability whatever its label, so every label keeps its share of the rows in
expectation (proportional stratification); the realised shares are reported.

The replicated copies of a row (``replicate=N``: ids ``row + c * COPY_STRIDE``) are
one row for the sample, as they are for the validation holdout: they are kept or
dropped together, so a kept row is seen as many times an epoch as in the exact run
(sampling each copy on its own kept ~93% of the rows at a quarter, each ~2.5 times,
and a deep model that overfits the exact run's ten passes did not overfit the
sample: the rungs ranked such models apart). :data:`SAMPLE_RULE` names this rule in
the fingerprints of sampled outputs, so a sample drawn by an earlier rule is never
reused for it.
"""

from __future__ import annotations

import numpy as np

from helix_tf.types import COPY_STRIDE

__all__ = ["SAMPLE_RULE", "keep_mask"]

#: The sampling rule's version, part of every sampled output's fingerprint (1: each id
#: on its own; 2: the copies of a row together).
SAMPLE_RULE = 2

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def keep_mask(row_ids: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of the rows a sample of ``fraction`` keeps (copies of a row together).

    >>> ids = np.arange(100_000)
    >>> round(float(keep_mask(ids, 0.1).mean()), 2)
    0.1
    >>> bool((keep_mask(ids, 0.1, seed=1) == keep_mask(ids, 0.1, seed=1)).all())
    True
    >>> bool((keep_mask(ids + 3 * COPY_STRIDE, 0.1) == keep_mask(ids, 0.1)).all())
    True
    """
    if fraction >= 1.0:
        return np.ones(len(row_ids), dtype=bool)
    rows = np.asarray(row_ids, dtype=np.int64) % COPY_STRIDE
    with np.errstate(over="ignore"):
        h = _mix(rows.astype(np.uint64) + np.uint64(seed) * _M2)
    u = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return u < fraction
