"""The built-in metrics: threshold metrics (accuracy, precision, recall, ...), AUC, log loss."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import ClassVar

import numpy as np

from helix_tf.components.metrics._base import Metric, _Tally
from helix_tf.components.metrics._bootstrap import Counts

_DEFAULT_THRESHOLD = 0.5


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
        groups = _auc_groups(is_neg, np.concatenate([before[tied], pos_cols[tied]]))
        # Read as groups: a run of positives with no negative between them has the same
        # negatives below each (a tie's two categories are groups of their own).
        first = np.flatnonzero(np.diff(groups, prepend=-1))
        group_neg = is_neg[first]
        group_pos = np.flatnonzero(~group_neg)
        tied_groups = groups[pos_cols[tied]]
        tie_cols, tied_pos = tied_groups - 1, np.searchsorted(group_pos, tied_groups)
        neg_groups = np.flatnonzero(group_neg)
        # Of each positive group, how many negative groups come before it (score <=).
        below = np.searchsorted(neg_groups, group_pos)

        def finish(draws: Counts) -> dict[str, np.ndarray]:
            # Negatives up to each negative group, summed over the negative columns only
            # (column 0: none yet): the same integers as over all columns, in half of them.
            neg_upto = np.zeros((len(draws), len(neg_groups) + 1), dtype=np.int64)
            np.cumsum(draws[:, neg_groups], axis=1, out=neg_upto[:, 1:])
            pos = draws[:, group_pos]
            # Twice the wins, in integers: 2 per lower negative, 1 per tied negative.
            twice = 2 * neg_upto[:, below]
            twice[:, tied_pos] -= draws[:, tie_cols]
            wins = np.einsum("ij,ij->i", pos, twice) / 2
            pairs = (pos.sum(axis=1) * neg_upto[:, -1]).astype(np.float64)
            return {"auc": _ratio(wins, pairs, math.nan)}

        return _Tally(counts=counts, finish=finish, groups=groups)


def _auc_groups(is_neg: np.ndarray, alone: np.ndarray) -> np.ndarray:
    """AUC's categories (negative or not, in score order) in groups: runs of one label,
    the categories ``alone`` (a tie's negatives and positives) each a group of its own.

    Summed over a group, the positives' wins are the same integers (a run's positives
    have the same negatives below them), so AUC is the same float from fewer columns.

    >>> _auc_groups(np.array([True, True, False, False, True, False]), np.array([], int))
    array([0, 0, 1, 1, 2, 3])
    >>> _auc_groups(np.array([True, True, False, False]), np.array([1, 2]))
    array([0, 1, 2, 3])
    """
    starts = np.ones(len(is_neg), dtype=bool)
    starts[1:] = is_neg[1:] != is_neg[:-1]
    after = alone + 1
    starts[alone] = True
    starts[after[after < len(is_neg)]] = True
    return np.cumsum(starts) - 1


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
