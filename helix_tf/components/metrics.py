"""Evaluation reducers for binary classifiers: accuracy, AUC, precision, recall and friends.

A metric is a frozen spec (an :class:`~helix_tf.components.base.Operator`) whose
``compute`` reduces labels and predicted probabilities to named numbers, and whose
``bootstrap`` puts a percentile interval around each of them. Everything is plain
numpy: metrics run in the Python reducer stage of a plan, never in TensorFlow or Beam.

Conventions shared by every metric:

- ``y_true`` holds 0/1 labels (bools and 0.0/1.0 floats are accepted); ``y_score``
  holds the predicted probability of the positive class, in [0, 1]. A column
  vector of shape ``(n, 1)``, as Keras ``predict`` returns, is flattened.
- A score ``>= threshold`` predicts the positive class (compared in the scores' own
  precision, so a float32 score written as the threshold counts as positive).
- ``slice_by`` names a raw column; the metric is then computed over all rows and
  over the rows of every value of that column, under keys such as
  ``"accuracy[sex=Female]"`` (missing values become ``"<missing>"``). Result keys
  are sorted as strings.
- A quotient with a zero denominator follows scikit-learn's default: precision
  with no predicted positives and recall with no actual positives are 0.0.
  Accuracy and log loss of zero rows, and AUC when only one class is present, are
  nan.

Bootstrap intervals resample rows with replacement. Every built-in metric
depends on the rows only through counts per category (a confusion-matrix cell; a
distinct score and label; a distinct per-row loss), so a resample is drawn as a
multinomial vector of those counts, which is exactly the distribution of counts
that resampling rows gives, in a few vectorised numpy calls. Each slice is
resampled on its own (a stratified bootstrap: the slice's size is held fixed).
:class:`Custom` metrics are resampled row by row, calling their function once per
sample.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from helix_tf.components.base import Operator, did_you_mean
from helix_tf.errors import ConfigError, DataError, ExecutionError

if TYPE_CHECKING:  # pandas is imported where frames are used: `import helix_tf` stays light
    import pandas as pd

__all__ = [
    "AUC",
    "Accuracy",
    "ConfusionMatrix",
    "Custom",
    "LogLoss",
    "Metric",
    "Precision",
    "PrecisionRecall",
    "Recall",
    "bootstrap_metrics",
    "compute_metrics",
]

logger = logging.getLogger(__name__)

MISSING_LABEL = "<missing>"
"""How a missing value of the ``slice_by`` column appears in result keys."""

_DEFAULT_THRESHOLD = 0.5
# Up to this many categories a resample's counts come from one multinomial draw;
# above it, from drawing row indices (multinomial sampling is O(categories) per draw).
_MAX_MULTINOMIAL_CATEGORIES = 64
# Row indices drawn at once when resampling many categories (fastest here; ~8 MB per array).
_CHUNK_DRAWS = 1_000_000

Counts = np.ndarray  # shape (samples, categories): how often each category was drawn
Finish = Callable[[Counts], dict[str, np.ndarray]]  # counts -> {key: value per sample}


@dataclasses.dataclass(frozen=True)
class _Tally:
    """Rows reduced to counts per category, and how to turn counts into metric values."""

    counts: np.ndarray  # shape (categories,)
    finish: Finish


@dataclasses.dataclass(frozen=True, kw_only=True)
class Metric(Operator):
    """Base class of evaluation metrics for binary classifiers.

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

    def keys(self) -> tuple[str, ...]:
        """Return the overall result keys, known before computing (slices add suffixes)."""
        raise NotImplementedError(f"{self.op_name} must implement keys()")

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
        values = tally.finish(tally.counts[np.newaxis, :])
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
        chunks = [tally.finish(counts) for counts in _draw_counts(tally.counts, samples, rng)]
        return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}

    # -- shared plumbing --------------------------------------------------------------

    def _check_inputs(
        self, y_true: Any, y_score: Any, frame: pd.DataFrame | None
    ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame | None]:
        who = _describe(self)
        y = _as_vector(y_true, "y_true", who)
        s = _as_vector(y_score, "y_score", who)
        if len(y) != len(s):
            raise DataError(
                f"{who}: y_true and y_score must have the same length, "
                f"but got {len(y)} and {len(s)}"
            )
        y = _as_labels(y, who)
        s = _as_scores(s, who)
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

    def _partitions(self, frame: pd.DataFrame | None) -> list[tuple[str, np.ndarray | None]]:
        """Return ``(key suffix, row positions)``: all rows first (``None``), then slices."""
        parts: list[tuple[str, np.ndarray | None]] = [("", None)]
        if not self.slice_by or frame is None:
            return parts
        import pandas as pd

        codes, uniques = pd.factorize(frame[self.slice_by], use_na_sentinel=True)
        labels = [str(value) for value in uniques]
        if (codes < 0).any():
            labels.append(MISSING_LABEL)
            codes = np.where(codes < 0, len(labels) - 1, codes)
        if len(set(labels)) != len(labels):
            dup = next(label for label in labels if labels.count(label) > 1)
            raise DataError(
                f"{_describe(self)}: two different values of column {self.slice_by!r} "
                f"are both written {dup!r}; make the column's values distinct as text"
            )
        order = np.argsort(codes, kind="stable")
        bounds = np.cumsum(np.bincount(codes, minlength=len(labels)))[:-1]
        for label, rows in zip(labels, np.split(order, bounds), strict=True):
            parts.append((f"[{self.slice_by}={label}]", rows))
        return parts


# -- threshold metrics ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class _ThresholdMetric(Metric):
    """A metric of the predictions ``y_score >= threshold``: a function of the confusion matrix.

    Keys get the suffix ``@threshold`` when the threshold is not 0.5.
    """

    threshold: float = _DEFAULT_THRESHOLD

    def validate(self) -> list[str]:
        """Return the problems with these parameters (empty when valid)."""
        problems = super().validate()
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, numbers.Real):
            problems.append(f"threshold must be a number in [0, 1], but got {t!r}")
        elif not 0 <= t <= 1:
            problems.append(f"threshold must be in [0, 1], but got {t!r}")
        return problems

    @property
    def _at(self) -> str:
        t = float(self.threshold)
        return "" if t == _DEFAULT_THRESHOLD else f"@{t!r}"

    def _tally(self, y_true: np.ndarray, y_score: np.ndarray) -> _Tally:
        # Compare in the scores' own precision, so a float32 score equal to the
        # threshold as written counts as positive.
        predicted = y_score >= y_score.dtype.type(self.threshold)
        counts = np.bincount(2 * y_true + predicted, minlength=4)  # tn, fp, fn, tp
        return _Tally(counts=counts, finish=self._from_confusion)

    def _from_confusion(self, counts: Counts) -> dict[str, np.ndarray]:
        raise NotImplementedError


def _cells(counts: Counts) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split confusion counts (samples, 4) into float tn, fp, fn, tp vectors."""
    c = counts.astype(np.float64)
    return c[:, 0], c[:, 1], c[:, 2], c[:, 3]


def _ratio(numerator: np.ndarray, denominator: np.ndarray, empty: float) -> np.ndarray:
    """numerator / denominator, with ``empty`` where the denominator is 0."""
    out = np.full_like(numerator, empty, dtype=np.float64)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def _precision(counts: Counts) -> np.ndarray:
    _, fp, _, tp = _cells(counts)
    return _ratio(tp, tp + fp, 0.0)


def _recall(counts: Counts) -> np.ndarray:
    _, _, fn, tp = _cells(counts)
    return _ratio(tp, tp + fn, 0.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Accuracy(_ThresholdMetric):
    """Fraction of rows whose prediction (``score >= threshold``) equals the label.

    Key ``"accuracy"``, or e.g. ``"accuracy@0.35"`` when the threshold is not 0.5;
    nan for zero rows.
    """

    def keys(self) -> tuple[str, ...]:
        """Return ``("accuracy",)``, with the threshold suffix when not 0.5."""
        return (f"accuracy{self._at}",)

    def _from_confusion(self, counts: Counts) -> dict[str, np.ndarray]:
        tn, fp, fn, tp = _cells(counts)
        return {f"accuracy{self._at}": _ratio(tp + tn, tn + fp + fn + tp, math.nan)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Precision(_ThresholdMetric):
    """Fraction of predicted positives that are positive: tp / (tp + fp).

    Key ``"precision"`` (``"precision@t"`` when the threshold t is not 0.5). With
    no predicted positives the precision is 0.0, as in scikit-learn.
    """

    def keys(self) -> tuple[str, ...]:
        """Return ``("precision",)``, with the threshold suffix when not 0.5."""
        return (f"precision{self._at}",)

    def _from_confusion(self, counts: Counts) -> dict[str, np.ndarray]:
        return {f"precision{self._at}": _precision(counts)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recall(_ThresholdMetric):
    """Fraction of positives predicted positive: tp / (tp + fn).

    Key ``"recall"`` (``"recall@t"`` when the threshold t is not 0.5). With no
    actual positives the recall is 0.0, as in scikit-learn.
    """

    def keys(self) -> tuple[str, ...]:
        """Return ``("recall",)``, with the threshold suffix when not 0.5."""
        return (f"recall{self._at}",)

    def _from_confusion(self, counts: Counts) -> dict[str, np.ndarray]:
        return {f"recall{self._at}": _recall(counts)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrecisionRecall(_ThresholdMetric):
    """:class:`Precision` and :class:`Recall` at one threshold, from one pass over the rows."""

    def keys(self) -> tuple[str, ...]:
        """Return ``("precision", "recall")``, with the threshold suffix when not 0.5."""
        return (f"precision{self._at}", f"recall{self._at}")

    def _from_confusion(self, counts: Counts) -> dict[str, np.ndarray]:
        return {f"precision{self._at}": _precision(counts), f"recall{self._at}": _recall(counts)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConfusionMatrix(_ThresholdMetric):
    """Counts of true/false positives/negatives.

    Keys ``"confusion/tp"``, ``"confusion/fp"``, ``"confusion/tn"``,
    ``"confusion/fn"``; with a threshold t other than 0.5, ``"confusion@t/tp"`` etc.
    The four counts sum to the number of rows.
    """

    def keys(self) -> tuple[str, ...]:
        """Return the four cell keys."""
        return tuple(f"confusion{self._at}/{cell}" for cell in ("tp", "fp", "tn", "fn"))

    def _from_confusion(self, counts: Counts) -> dict[str, np.ndarray]:
        tn, fp, fn, tp = _cells(counts)
        cells = {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
        return {f"confusion{self._at}/{name}": value for name, value in cells.items()}


# -- score metrics --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class AUC(Metric):
    """Area under the ROC curve (key ``"auc"``).

    Computed as the Mann–Whitney statistic: the fraction of (positive, negative)
    pairs in which the positive scores higher, a tie counting one half, which is
    the rank-sum formula with average ranks for ties. nan when only one class is
    present.

    Examples
    --------
    >>> AUC().compute([1, 0, 1, 0], [0.8, 0.3, 0.3, 0.1])
    {'auc': 0.875}
    """

    def keys(self) -> tuple[str, ...]:
        """Return ``("auc",)``."""
        return ("auc",)

    def _tally(self, y_true: np.ndarray, y_score: np.ndarray) -> _Tally:
        # Categories: the (distinct score, label) pairs that occur, in ascending
        # score order, a score's negatives before its positives.
        _, score_rank = np.unique(y_score, return_inverse=True)
        pair = 2 * score_rank.ravel() + y_true
        occurring, counts = np.unique(pair, return_counts=True)
        is_neg = occurring % 2 == 0
        pos_cols = np.flatnonzero(~is_neg)
        # A positive category ties with the category before it when that holds the
        # negatives of the same score.
        before = np.maximum(pos_cols - 1, 0)
        tied = (pos_cols > 0) & (occurring[before] == occurring[pos_cols] - 1)
        tie_cols, tied_pos = before[tied], np.flatnonzero(tied)

        def finish(draws: Counts) -> dict[str, np.ndarray]:
            neg_upto = np.cumsum(np.where(is_neg, draws, 0), axis=1)  # negatives with score <=
            pos = draws[:, pos_cols]
            # Twice the wins, in integers: 2 per lower negative, 1 per tied negative.
            twice = 2 * neg_upto[:, pos_cols]
            twice[:, tied_pos] -= draws[:, tie_cols]
            wins = np.sum(pos * twice, axis=1) / 2
            n_neg = neg_upto[:, -1] if neg_upto.shape[1] else np.zeros(len(draws))
            pairs = (pos.sum(axis=1) * n_neg).astype(np.float64)
            return {"auc": _ratio(wins, pairs, math.nan)}

        return _Tally(counts=counts, finish=finish)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LogLoss(Metric):
    """Mean negative log-likelihood of the labels (key ``"log_loss"``).

    The probability given to the true label is clipped to ``[EPS, 1 - EPS]``
    first, so a confident wrong prediction costs ``-log(EPS)`` (about 34.5) rather
    than infinity. nan for
    zero rows.
    """

    EPS: ClassVar[float] = 1e-15

    def keys(self) -> tuple[str, ...]:
        """Return ``("log_loss",)``."""
        return ("log_loss",)

    def _tally(self, y_true: np.ndarray, y_score: np.ndarray) -> _Tally:
        s = y_score.astype(np.float64)
        p_label = np.clip(np.where(y_true == 1, s, 1 - s), self.EPS, 1 - self.EPS)
        losses = -np.log(p_label)
        # Categories: distinct per-row losses.
        values, counts = np.unique(losses, return_counts=True)

        def finish(draws: Counts) -> dict[str, np.ndarray]:
            total = draws @ values
            return {"log_loss": _ratio(total, draws.sum(axis=1).astype(np.float64), math.nan)}

        return _Tally(counts=counts, finish=finish)


# -- user-defined ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Custom(Metric):
    """A metric computed by a user function.

    Parameters
    ----------
    name : str
        The result key, or the prefix of the keys when ``fn`` returns a dict.
    fn : callable
        ``fn(y_true, y_score, frame) -> float | dict[str, float]``. ``y_true`` is
        an int array of 0/1 labels, ``y_score`` a float array, ``frame`` a
        DataFrame holding exactly the ``frame_columns`` of the same rows (index
        0..n-1), or None when ``frame_columns`` is empty. A float is reported as
        ``name``; a dict ``{sub: value}`` as ``name/sub`` for each entry.
    frame_columns : tuple of str
        The raw columns ``fn`` reads. (Named so because ``columns()`` is the
        method every metric has.)
    slice_by : str or None
        As for every metric.

    Notes
    -----
    Exceptions raised by ``fn`` are wrapped into
    :class:`~helix_tf.errors.ExecutionError` naming the metric. ``bootstrap``
    calls ``fn`` once on all rows (to fix the keys) and then once per sample.

    Examples
    --------
    >>> brier = Custom(name="brier", fn=lambda y, s, f: float(((s - y) ** 2).mean()))
    >>> brier.compute([1, 0], [0.75, 0.25])
    {'brier': 0.0625}
    """

    name: str
    fn: Callable[[np.ndarray, np.ndarray, pd.DataFrame | None], float | Mapping[str, float]]
    frame_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.frame_columns, list):
            object.__setattr__(self, "frame_columns", tuple(self.frame_columns))
        super().__post_init__()

    def validate(self) -> list[str]:
        """Return the problems with these parameters (empty when valid)."""
        problems = super().validate()
        if not isinstance(self.name, str) or not self.name.strip():
            problems.append(f"name must be a non-empty string, but got {self.name!r}")
        if not callable(self.fn):
            problems.append(
                f"fn must be callable, as fn(y_true, y_score, frame) -> float | dict, "
                f"but got {self.fn!r} ({type(self.fn).__name__})"
            )
        cols = self.frame_columns
        if isinstance(cols, str):
            problems.append(
                f"frame_columns must be a tuple of column names, but got the string {cols!r}; "
                f"write ({cols!r},)"
            )
        elif not isinstance(cols, tuple) or not all(isinstance(c, str) and c for c in cols):
            problems.append(
                f"frame_columns must be a tuple of non-empty column names, but got {cols!r}"
            )
        return problems

    def columns(self) -> tuple[str, ...]:
        """Return ``slice_by`` (if any) and then ``frame_columns``, without repeats."""
        return tuple(dict.fromkeys(super().columns() + tuple(self.frame_columns)))

    def keys(self) -> tuple[str, ...]:
        """Return ``(name,)``: the key, or the prefix of the keys of a dict result."""
        return (self.name,)

    def _evaluate(
        self, y_true: np.ndarray, y_score: np.ndarray, frame: pd.DataFrame | None
    ) -> dict[str, float]:
        own = frame[list(self.frame_columns)] if self.frame_columns and frame is not None else None
        try:
            result = self.fn(y_true, y_score, own)
        except Exception as exc:
            raise ExecutionError(
                f"custom metric {self.name!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(result, Mapping):
            checked = self._check_subkeys(result)
            return {f"{self.name}/{sub}": self._as_float(v, sub) for sub, v in checked.items()}
        return {self.name: self._as_float(result, None)}

    def _check_subkeys(self, result: Mapping[Any, Any]) -> Mapping[str, Any]:
        bad = [k for k in result if not isinstance(k, str) or not k]
        if bad:
            raise ExecutionError(
                f"custom metric {self.name!r} returned a dict with keys {bad!r}; "
                "its keys must be non-empty strings"
            )
        return result

    def _as_float(self, value: Any, sub: str | None) -> float:
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            where = f" under key {sub!r}" if sub is not None else ""
            raise ExecutionError(
                f"custom metric {self.name!r} returned {value!r} ({type(value).__name__})"
                f"{where}; return a float or a dict of floats"
            ) from exc

    def _resample(
        self,
        y_true: np.ndarray,
        y_score: np.ndarray,
        frame: pd.DataFrame | None,
        samples: int,
        rng: np.random.Generator,
    ) -> dict[str, np.ndarray]:
        keys = self._evaluate(y_true, y_score, frame)  # intervals for exactly these keys
        n = len(y_true)
        draws: list[dict[str, float]] = []
        for _ in range(samples):
            rows = rng.integers(0, n, size=n) if n else np.zeros(0, dtype=np.intp)
            draws.append(self._evaluate(*_take(y_true, y_score, frame, rows)))
        return {key: np.array([d.get(key, math.nan) for d in draws]) for key in keys}


# -- several metrics at once ----------------------------------------------------------


def compute_metrics(
    metrics: Sequence[Metric],
    y_true: Any,
    y_score: Any,
    frame: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Compute several metrics and merge their results into one dict.

    Parameters
    ----------
    metrics : sequence of Metric
        The metrics; no two may produce the same key.
    y_true, y_score, frame
        As for :meth:`Metric.compute`; ``frame`` must hold the union of the
        metrics' :meth:`~Metric.columns`.

    Returns
    -------
    dict of str to float
        All keys, sorted.

    Raises
    ------
    ConfigError
        When two metrics produce the same key; the message names both.

    Examples
    --------
    >>> compute_metrics([Accuracy(), AUC()], [1, 0, 1, 0], [0.9, 0.6, 0.2, 0.1])
    {'accuracy': 0.5, 'auc': 0.75}
    """
    _check_distinct_keys(metrics)
    results = [(m, m.compute(y_true, y_score, frame)) for m in metrics]
    return _merge(results)


def bootstrap_metrics(
    metrics: Sequence[Metric],
    y_true: Any,
    y_score: Any,
    frame: pd.DataFrame | None = None,
    *,
    samples: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of several metrics, merged into one dict.

    Parameters and errors are those of :func:`compute_metrics` and
    :meth:`Metric.bootstrap`; every metric uses the same ``seed``.

    Returns
    -------
    dict of str to (float, float)
        ``{key: (low, high)}``, keys sorted.
    """
    _check_distinct_keys(metrics)
    results = [
        (m, m.bootstrap(y_true, y_score, frame, samples=samples, seed=seed, level=level))
        for m in metrics
    ]
    return _merge(results)


def _check_distinct_keys(metrics: Sequence[Metric]) -> None:
    """Reject non-metrics and metrics whose declared keys collide, before any work."""
    problems = [
        f"metrics[{i}] must be a Metric (e.g. metrics.Accuracy()), but got {m!r}"
        for i, m in enumerate(metrics)
        if not isinstance(m, Metric)
    ]
    if problems:
        raise ConfigError(problems)
    owner: dict[str, Metric] = {}
    for metric in metrics:
        declared = metric.keys()
        for key in declared:
            if key in owner and not _same_definition(owner[key], metric):
                problems.append(_duplicate(key, owner[key], metric))
            else:
                owner[key] = metric
    if problems:
        raise ConfigError(problems)


def _merge(results: Sequence[tuple[Metric, Mapping[str, Any]]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    owner: dict[str, Metric] = {}
    problems: list[str] = []
    for metric, result in results:
        for key, value in result.items():
            if key in owner and not _same_definition(owner[key], metric):
                problems.append(_duplicate(key, owner[key], metric))
            owner[key] = metric
            merged[key] = value
    if problems:
        raise ConfigError(problems)
    return dict(sorted(merged.items()))


def _same_definition(a: Metric, b: Metric) -> bool:
    """Metrics that differ only in ``slice_by`` compute the same overall value.

    ``Accuracy()`` and ``Accuracy(slice_by="sex")`` may be declared together: both
    produce the overall ``accuracy`` (identical), plus the sliced keys of the second.
    """
    if type(a) is not type(b) or isinstance(a, Custom):
        return False
    pa_, pb = dict(a.params()), dict(b.params())
    pa_.pop("slice_by", None)
    pb.pop("slice_by", None)
    return pa_ == pb


def _duplicate(key: str, first: Metric, second: Metric) -> str:
    return (
        f"metrics {_describe(first)} and {_describe(second)} both produce the key {key!r}; "
        "drop one, or give one another threshold or name"
    )


# -- helpers --------------------------------------------------------------------------


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
