"""Seeded row sampling by a hash of each row's stable id.

Every row keeps or drops itself by ``hash(row_id, seed) < fraction``: the same
rows are kept wherever the sample is applied (at the source, or on stored
examples), with no coordination and no shuffle. Each row is kept with the same
probability whatever its label, so every label keeps its share of the rows in
expectation (proportional stratification); the realised shares are reported.
"""

from __future__ import annotations

import numpy as np

__all__ = ["keep_mask", "sample_note", "sample_problem"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def keep_mask(row_ids: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of the rows a sample of ``fraction`` keeps.

    >>> ids = np.arange(100_000)
    >>> round(float(keep_mask(ids, 0.1).mean()), 2)
    0.1
    >>> bool((keep_mask(ids, 0.1, seed=1) == keep_mask(ids, 0.1, seed=1)).all())
    True
    """
    if fraction >= 1.0:
        return np.ones(len(row_ids), dtype=bool)
    with np.errstate(over="ignore"):
        h = _mix(np.asarray(row_ids, dtype=np.int64).astype(np.uint64) + np.uint64(seed) * _M2)
    u = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return u < fraction


def sample_note(fraction: float, seed: int) -> str:
    """What to say after a problem found on an approximate run's sample of the training rows."""
    return (
        f"this approximate run read a sample of the training rows (--sample {fraction:g}, "
        f"seed {seed}), not all of them: pass a larger --sample, or run exact"
    )


def sample_problem(
    labels: np.ndarray, kept: np.ndarray, *, task: str, fraction: float, seed: int
) -> str | None:
    """Why the rows ``kept`` of a training split (``labels``) cannot train a model, if so.

    A sample that keeps no row, or (classification) rows of one label value where the
    split has several, trains a model that learned nothing: its metrics would be shown
    as an approximation of the exact run's.
    """
    n, k = len(labels), int(np.count_nonzero(kept))
    if k == 0:
        return f"the sample kept no row of the {n:,} training rows; {sample_note(fraction, seed)}"
    if task == "regression":
        return None
    values = np.unique(labels[kept]).tolist()  # Python values: shown as 0, not np.int8(0)
    if len(values) < 2 <= len(np.unique(labels)):
        return (
            f"the sample kept {k:,} of the {n:,} training rows, with only one label value "
            f"({values[0]!r}) where the split has several: the model would learn one "
            f"class; {sample_note(fraction, seed)}"
        )
    return None
