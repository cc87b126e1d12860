"""The metric base class and the checks of labels, scores and frames every metric shares."""

from __future__ import annotations

import abc
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from helix_tf.components._value_names import MISSING_NAME, value_name
from helix_tf.components.base import Operator, did_you_mean
from helix_tf.components.metrics._bootstrap import (
    Counts,
    _check_bootstrap_args,
    _draw_counts,
    _group_counts,
    _percentile_interval,
)
from helix_tf.errors import DataError

if TYPE_CHECKING:  # pandas is imported where frames are used: `import helix_tf` stays light
    import pandas as pd

logger = logging.getLogger(__name__)

MISSING_LABEL = MISSING_NAME
"""How a missing value of the ``slice_by`` column appears in result keys (a value of
the data spelled so appears as ``'<missing>'``)."""

Finish = Callable[[Counts], dict[str, np.ndarray]]  # counts -> {key: value per sample}


@dataclasses.dataclass(frozen=True)
class _Tally:
    """Rows reduced to counts per category, and how to turn counts into metric values."""

    counts: np.ndarray  # shape (categories,)
    finish: Finish
    #: Categories that ``finish`` reads as one column, their counts summed (one a category,
    #: 0, then each the one before or one more; None: a column each): the same values
    #: from fewer columns (:func:`._bootstrap._draw_counts`).
    groups: np.ndarray | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Metric(Operator, abc.ABC):
    """Base class of evaluation metrics (binary classifiers unless ``TASKS`` says more).

    A slice's key names its value as text; a missing value is ``<missing>``, a value of
    the data spelled so ``'<missing>'`` (:func:`~helix_tf.components._value_names.value_name`).

    Parameters
    ----------
    slice_by : str or None
        A raw column name. When given, the metric is computed over all rows and
        also over the rows of every value of this column.

    Notes
    -----
    Subclasses implement :meth:`keys` and either ``_tally`` (a reduction of the
    rows to counts per category, which gives fast vectorised bootstraps) or
    ``_evaluate`` and ``_resample`` (arbitrary Python, as :class:`Custom` does).
    """

    KIND: ClassVar[str] = "metric"
    #: 2: a value of the ``slice_by`` column spelled ``<missing>`` is its own slice,
    #: ``[column='<missing>']`` (it was keyed as the missing rows are, or refused beside
    #: them), and a whole number's slice is keyed as an integer (``[age=30]``; it was
    #: ``[age=30.0]`` for an int column; QA pass 25). A metric class that sets its own
    #: VERSION adds 1 for this.
    VERSION: ClassVar[int] = 2
    #: The label tasks this metric fits ("binary", "multiclass", "regression"); the
    #: compiler rejects a metric whose tasks do not include the label's.
    TASKS: ClassVar[tuple[str, ...]] = ("binary",)

    slice_by: str | None = None

    def validate(self) -> list[str]:
        """Return the problems with these parameters (empty when valid)."""
        problems = super().validate()
        if self.slice_by is not None and (
            not isinstance(self.slice_by, str) or not self.slice_by.strip()
        ):
            problems.append(
                f"slice_by must be a non-empty column name or None, but got {self.slice_by!r}"
            )
        return problems

    def columns(self) -> tuple[str, ...]:
        """Return the raw columns ``compute`` needs in ``frame`` (empty: no frame needed)."""
        return (self.slice_by,) if self.slice_by else ()

    @abc.abstractmethod
    def keys(self) -> tuple[str, ...]:
        """Return the overall result keys, known before computing (slices add suffixes)."""

    def compute(
        self,
        y_true: Any,
        y_score: Any,
        frame: pd.DataFrame | None = None,
    ) -> dict[str, float]:
        """Compute the metric over all rows and, with ``slice_by``, per slice.

        Parameters
        ----------
        y_true : array-like of shape (n,)
            0/1 labels.
        y_score : array-like of shape (n,)
            Predicted probability of the positive class, in [0, 1].
        frame : pandas.DataFrame, optional
            The raw columns of the same rows, in the same order; required when
            :meth:`columns` is non-empty.

        Returns
        -------
        dict of str to float
            ``{key: value}``, keys sorted.

        Raises
        ------
        DataError
            When the labels, scores or frame are malformed.
        ExecutionError
            When a custom metric's function fails.

        Examples
        --------
        >>> import pandas as pd
        >>> from helix_tf.metrics import Accuracy
        >>> Accuracy().compute([1, 0, 1, 0], [0.9, 0.6, 0.2, 0.1])
        {'accuracy': 0.5}
        >>> Accuracy(slice_by="g").compute(
        ...     [1, 0, 1], [0.9, 0.6, 0.7], pd.DataFrame({"g": ["a", "a", None]}))
        {'accuracy': 0.6666666666666666, 'accuracy[g=<missing>]': 1.0, 'accuracy[g=a]': 0.5}
        """
        y, s, frame = self._check_inputs(y_true, y_score, frame)
        out: dict[str, float] = {}
        for suffix, rows in self._partitions(frame):
            part = self._evaluate(*_take(y, s, frame, rows))
            out.update({key + suffix: value for key, value in part.items()})
        return dict(sorted(out.items()))

    def bootstrap(
        self,
        y_true: Any,
        y_score: Any,
        frame: pd.DataFrame | None = None,
        *,
        samples: int = 200,
        seed: int = 0,
        level: float = 0.95,
    ) -> dict[str, tuple[float, float]]:
        """Return a percentile bootstrap interval for every key of :meth:`compute`.

        Parameters
        ----------
        y_true, y_score, frame
            As for :meth:`compute`.
        samples : int
            Number of resamples.
        seed : int
            Seed of the random generator; the same seed gives the same intervals.
        level : float
            Coverage of the interval, in (0, 1); 0.95 takes the 2.5th and 97.5th
            percentiles of the resampled values.

        Returns
        -------
        dict of str to (float, float)
            ``{key: (low, high)}``, keys sorted. Resamples whose value is nan (e.g.
            AUC of a resample with one class) are ignored; ``(nan, nan)`` when all are.
        """
        _check_bootstrap_args(samples, seed, level)
        y, s, frame = self._check_inputs(y_true, y_score, frame)
        started = time.perf_counter()
        parts = self._partitions(frame)
        streams = np.random.SeedSequence(seed).spawn(len(parts))
        out: dict[str, tuple[float, float]] = {}
        for (suffix, rows), stream in zip(parts, streams, strict=True):
            rng = np.random.default_rng(stream)
            values = self._resample(*_take(y, s, frame, rows), samples, rng)
            for key, draws in values.items():
                out[key + suffix] = _percentile_interval(draws, level)
        logger.debug(
            "bootstrap of %s: %d samples of %d rows in %.3f s",
            _describe(self),
            samples,
            len(y),
            time.perf_counter() - started,
        )
        return dict(sorted(out.items()))

    # -- hooks for subclasses ---------------------------------------------------------

    def _tally(self, y_true: np.ndarray, y_score: np.ndarray) -> _Tally:
        raise NotImplementedError(f"{self.op_name} must implement _tally or _evaluate")

    def _evaluate(
        self, y_true: np.ndarray, y_score: np.ndarray, frame: pd.DataFrame | None
    ) -> dict[str, float]:
        tally = self._tally(y_true, y_score)
        values = tally.finish(_group_counts(tally.counts, tally.groups)[np.newaxis, :])
        return {key: float(v[0]) for key, v in values.items()}

    def _resample(
        self,
        y_true: np.ndarray,
        y_score: np.ndarray,
        frame: pd.DataFrame | None,
        samples: int,
        rng: np.random.Generator,
    ) -> dict[str, np.ndarray]:
        tally = self._tally(y_true, y_score)
        draws = _draw_counts(tally.counts, samples, rng, tally.groups)
        chunks = [tally.finish(counts) for counts in draws]
        return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}

    # -- shared plumbing --------------------------------------------------------------

    def _check_inputs(
        self, y_true: Any, y_score: Any, frame: pd.DataFrame | None
    ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame | None]:
        who = _describe(self)
        y, s = self._check_arrays(y_true, y_score, who)
        needed = self.columns()
        if not needed:
            return y, s, None
        if frame is None:
            raise DataError(
                f"{who} needs the raw columns {list(needed)} but no frame was given; "
                "pass the rows' raw columns as frame="
            )
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"{who}: frame must be a pandas DataFrame, but got {type(frame)!r}")
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            known = [str(c) for c in frame.columns]
            raise DataError(
                "; ".join(
                    f"{who} needs column {c!r}, which the frame lacks{did_you_mean(c, known)}"
                    for c in missing
                )
                + f" (the frame has: {', '.join(known)})"
            )
        if len(frame) != len(y):
            raise DataError(
                f"{who}: frame must have one row per label, but got {len(frame)} rows "
                f"for {len(y)} labels"
            )
        return y, s, frame[list(needed)].reset_index(drop=True)

    def _check_arrays(self, y_true: Any, y_score: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
        """Labels and scores checked for this metric's task (binary: 0/1 and probabilities)."""
        y = _as_vector(y_true, "y_true", who)
        s = _as_vector(y_score, "y_score", who)
        _same_length(y, s, who)
        return _as_labels(y, who), _as_scores(s, who)

    def _partitions(self, frame: pd.DataFrame | None) -> list[tuple[str, np.ndarray | None]]:
        """Return ``(key suffix, row positions)``: all rows first (``None``), then slices."""
        parts: list[tuple[str, np.ndarray | None]] = [("", None)]
        if not self.slice_by or frame is None:
            return parts
        import pandas as pd

        codes, uniques = pd.factorize(frame[self.slice_by], use_na_sentinel=True)
        labels = [value_name(value) for value in uniques]
        if (codes < 0).any():
            labels.append(MISSING_LABEL)
            codes = np.where(codes < 0, len(labels) - 1, codes)
        if len(set(labels)) != len(labels):
            dup = next(label for label in labels if labels.count(label) > 1)
            both = [repr(v) for v in uniques if value_name(v) == dup]
            raise DataError(
                f"{_describe(self)}: the values {' and '.join(both)} of column "
                f"{self.slice_by!r} are both written {dup!r} in result keys; make the "
                "column's values distinct as text (one type per column)"
            )
        order = np.argsort(codes, kind="stable")
        bounds = np.cumsum(np.bincount(codes, minlength=len(labels)))[:-1]
        for label, rows in zip(labels, np.split(order, bounds), strict=True):
            parts.append((f"[{self.slice_by}={label}]", rows))
        return parts


def _describe(metric: Metric) -> str:
    """A short spelling of a metric for messages: its class and non-default parameters."""
    parts = []
    for f in dataclasses.fields(metric):
        value = getattr(metric, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        shown = getattr(value, "__qualname__", None) if callable(value) else None
        parts.append(f"{f.name}={shown or repr(value)}")
    return f"{metric.op_name}({', '.join(parts)})"


def _take(
    y: np.ndarray, s: np.ndarray, frame: pd.DataFrame | None, rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame | None]:
    """The given row positions (all rows when None) of labels, scores and frame."""
    if rows is None:
        return y, s, frame
    sub = None if frame is None else frame.iloc[rows].reset_index(drop=True)
    return y[rows], s[rows], sub


def _same_length(y: np.ndarray, s: np.ndarray, who: str) -> None:
    if len(y) != len(s):
        raise DataError(
            f"{who}: y_true and y_score must have the same length, but got {len(y)} and {len(s)}"
        )


def _as_vector(values: Any, name: str, who: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(f"{who}: {name} must be one-dimensional, but got shape {array.shape}")
    return array


def _as_labels(y: np.ndarray, who: str) -> np.ndarray:
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        raise DataError(
            f"{who}: y_true must hold 0/1 labels, but got dtype {y.dtype}; "
            "map the label column to 0/1 first"
        )
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        shown = sorted({v.item() if hasattr(v, "item") else v for v in y[bad][:1000]}, key=str)
        raise DataError(
            f"{who}: y_true must hold 0/1 labels, but got {shown[:5]} "
            f"(first at row {int(np.flatnonzero(bad)[0])}); map the label column to 0/1 first"
        )
    return y.astype(np.int64)


def _as_scores(s: np.ndarray, who: str) -> np.ndarray:
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise DataError(f"{who}: y_score must be numeric probabilities, but got dtype {s.dtype}")
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)
    bad = ~((s >= 0) & (s <= 1))  # also catches nan
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{who}: y_score must be probabilities in [0, 1], but got {s[row].item()!r} at "
            f"row {row} ({int(bad.sum())} such rows); apply a sigmoid to logits first"
        )
    return s
