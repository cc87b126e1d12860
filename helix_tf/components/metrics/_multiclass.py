"""Metrics of multiclass classifiers: accuracy, top-k, per-class P/R/F1, log loss, confusion, AUC.

Conventions: ``y_true`` holds class indices ``0..K-1``; ``y_score`` the predicted
probabilities, shape ``(n, K)``; the predicted class is the most probable one
(the first on ties). ``classes`` names the classes in result keys (the engine
fills it from the label's classes; without it the keys use the indices).

Bootstraps use the counting scheme of every built-in metric: accuracy, P/R/F1
and the confusion matrix depend on the rows only through the K×K confusion
counts, top-k on hit/miss counts, log loss on the distinct per-row losses; the
one-vs-rest AUC needs all K score columns of a row together, so its categories
are the rows themselves (a resample is a vector of per-row counts).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, ClassVar

import numpy as np

from helix_tf.components.base import normalized
from helix_tf.components.metrics._base import Metric, _as_vector, _same_length, _Tally
from helix_tf.components.metrics._bootstrap import Counts
from helix_tf.components.metrics._classification import _ratio
from helix_tf.errors import DataError

__all__ = [
    "MulticlassAccuracy",
    "TopKAccuracy",
    "MulticlassPrecisionRecallF1",
    "MulticlassConfusionMatrix",
    "MulticlassLogLoss",
    "OneVsRestAUC",
]


def _listed_names(classes: Any) -> Any:
    """Classes given as a list, as a tuple of text (a tuple is taken as it is)."""
    return tuple(str(c) for c in classes) if isinstance(classes, list) else classes


@dataclasses.dataclass(frozen=True, kw_only=True)
class _MulticlassMetric(Metric):
    """Base of multiclass metrics: checks class indices and per-class probabilities."""

    TASKS: ClassVar[tuple[str, ...]] = ("multiclass",)
    #: Class names for result keys, in output order (None: the engine fills them in).
    classes: tuple[str, ...] | None = normalized(_listed_names, default=None)

    def validate(self) -> list[str]:
        problems = super().validate()
        if self.classes is not None and (
            not isinstance(self.classes, tuple) or not all(isinstance(c, str) for c in self.classes)
        ):
            problems.append(f"classes must be a tuple of class names or None, got {self.classes!r}")
        return problems

    def with_classes(self, names: tuple[str, ...]) -> _MulticlassMetric:
        """This metric with class names for its keys (unless it was given its own)."""
        return self if self.classes is not None else dataclasses.replace(self, classes=names)

    def _names(self, k: int) -> list[str]:
        return list(self.classes) if self.classes is not None else [str(i) for i in range(k)]

    def _check_arrays(self, y_true: Any, y_score: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
        y = _as_vector(y_true, "y_true", who)
        s = np.asarray(y_score)
        if s.ndim != 2 or s.shape[1] < 2:
            raise DataError(
                f"{who}: y_score must hold one probability per class, shape (rows, classes), "
                f"but got shape {s.shape}"
            )
        _same_length(y, s, who)
        if not np.issubdtype(s.dtype, np.number):
            raise DataError(f"{who}: y_score must be numeric probabilities, but got {s.dtype}")
        s = s.astype(np.float64)
        bad = ~((s >= 0) & (s <= 1))
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            raise DataError(
                f"{who}: y_score must be probabilities in [0, 1], but row {row} has "
                f"{s[row].tolist()}; apply a softmax to logits first"
            )
        k = s.shape[1]
        if self.classes is not None and len(self.classes) != k:
            raise DataError(
                f"{who}: {len(self.classes)} class names for {k} score columns; "
                "give one name per class"
            )
        if not np.issubdtype(y.dtype, np.number) or (
            len(y) and (np.any(y != np.round(y)) or y.min() < 0 or y.max() >= k)
        ):
            shown = y[:5].tolist()
            raise DataError(
                f"{who}: y_true must hold class indices 0..{k - 1}, but got {shown} ...; "
                "map the labels to class indices first"
            )
        return y.astype(np.int64), s

    def _confusion_tally(self, y_true: np.ndarray, y_score: np.ndarray) -> _Tally:
        k = y_score.shape[1]
        predicted = np.argmax(y_score, axis=1)
        counts = np.bincount(y_true * k + predicted, minlength=k * k)
        names = self._names(k)
        return _Tally(
            counts=counts, finish=lambda draws: self._from_confusion(_square(draws, k), names)
        )

    def _from_confusion(self, cm: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        raise NotImplementedError


def _square(draws: Counts, k: int) -> np.ndarray:
    """Confusion counts (samples, k*k) as (samples, true k, predicted k) floats."""
    return np.asarray(draws, dtype=np.float64).reshape(len(draws), k, k)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MulticlassAccuracy(_MulticlassMetric):
    """Fraction of rows whose most probable class is the label (key ``"accuracy"``).

    Examples
    --------
    >>> MulticlassAccuracy().compute([0, 1, 2], [[.8, .1, .1], [.2, .7, .1], [.5, .3, .2]])
    {'accuracy': 0.6666666666666666}
    """

    def keys(self) -> tuple[str, ...]:
        return ("accuracy",)

    def _tally(self, y_true: np.ndarray, y_score: np.ndarray) -> _Tally:
        return self._confusion_tally(y_true, y_score)

    def _from_confusion(self, cm: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        right = np.trace(cm, axis1=1, axis2=2)
        return {"accuracy": _ratio(right, cm.sum(axis=(1, 2)), math.nan)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopKAccuracy(_MulticlassMetric):
    """Fraction of rows whose label is among the ``k`` most probable classes.

    Key ``"top{k}_accuracy"``. Ties count in the label's favour: the label is a hit
    when fewer than ``k`` classes have a strictly higher probability.
    """

    k: int = 2

    def validate(self) -> list[str]:
        problems = super().validate()
        if isinstance(self.k, bool) or not isinstance(self.k, numbers.Integral) or self.k < 1:
            problems.append(f"k must be an integer >= 1, but got {self.k!r}")
        return problems

    def keys(self) -> tuple[str, ...]:
        return (f"top{self.k}_accuracy",)

    def _tally(self, y_true: np.ndarray, y_score: np.ndarray) -> _Tally:
        own = y_score[np.arange(len(y_true)), y_true]
        higher = (y_score > own[:, np.newaxis]).sum(axis=1)
        counts = np.bincount((higher < self.k).astype(np.int64), minlength=2)  # miss, hit
        key = f"top{self.k}_accuracy"

        def finish(draws: Counts) -> dict[str, np.ndarray]:
            d = np.asarray(draws, dtype=np.float64)
            return {key: _ratio(d[:, 1], d.sum(axis=1), math.nan)}

        return _Tally(counts=counts, finish=finish)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MulticlassPrecisionRecallF1(_MulticlassMetric):
    """Precision, recall and F1 of every class, and their macro and weighted averages.

    Keys ``"precision/<class>"``, ``"recall/<class>"``, ``"f1/<class>"`` and the same
    with ``macro`` (the plain mean over classes) and ``weighted`` (weighted by each
    class's number of true rows) in place of the class. A quotient with a zero
    denominator is 0.0, as in scikit-learn.
    """

    def keys(self) -> tuple[str, ...]:
        return tuple(
            f"{m}/{avg}" for m in ("precision", "recall", "f1") for avg in ("macro", "weighted")
        )

    def _tally(self, y_true: np.ndarray, y_score: np.ndarray) -> _Tally:
        return self._confusion_tally(y_true, y_score)

    def _from_confusion(self, cm: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        tp = np.diagonal(cm, axis1=1, axis2=2)
        support = cm.sum(axis=2)  # true rows per class
        predicted = cm.sum(axis=1)
        precision = _ratio(tp, predicted, 0.0)
        recall = _ratio(tp, support, 0.0)
        f1 = _ratio(2 * precision * recall, precision + recall, 0.0)
        out: dict[str, np.ndarray] = {}
        total = support.sum(axis=1)
        for metric, per_class in (("precision", precision), ("recall", recall), ("f1", f1)):
            for i, name in enumerate(names):
                out[f"{metric}/{name}"] = per_class[:, i]
            out[f"{metric}/macro"] = per_class.mean(axis=1)
            out[f"{metric}/weighted"] = _ratio((per_class * support).sum(axis=1), total, 0.0)
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class MulticlassConfusionMatrix(_MulticlassMetric):
    """Rows per (true class, predicted class): keys ``"confusion/<true>/<predicted>"``."""

    def keys(self) -> tuple[str, ...]:
        return ()  # one key per pair of classes, known once the classes are

    def _tally(self, y_true: np.ndarray, y_score: np.ndarray) -> _Tally:
        return self._confusion_tally(y_true, y_score)

    def _from_confusion(self, cm: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        return {
            f"confusion/{t}/{p}": cm[:, i, j]
            for i, t in enumerate(names)
            for j, p in enumerate(names)
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class MulticlassLogLoss(_MulticlassMetric):
    """Mean of ``-log p(label)`` (key ``"log_loss"``), p clipped to ``[EPS, 1 - EPS]``."""

    EPS: ClassVar[float] = 1e-15

    def keys(self) -> tuple[str, ...]:
        return ("log_loss",)

    def _tally(self, y_true: np.ndarray, y_score: np.ndarray) -> _Tally:
        p = np.clip(y_score[np.arange(len(y_true)), y_true], self.EPS, 1 - self.EPS)
        values, counts = np.unique(-np.log(p), return_counts=True)

        def finish(draws: Counts) -> dict[str, np.ndarray]:
            total = draws @ values
            return {"log_loss": _ratio(total, draws.sum(axis=1).astype(np.float64), math.nan)}

        return _Tally(counts=counts, finish=finish)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OneVsRestAUC(_MulticlassMetric):
    """ROC AUC of each class against the rest, and their macro and weighted means.

    Keys ``"auc_ovr/<class>"``, ``"auc_ovr/macro"`` (mean over the classes whose AUC
    is defined) and ``"auc_ovr/weighted"`` (weighted by each class's true rows), as
    scikit-learn's ``roc_auc_score(multi_class="ovr")``. Ties count one half. A
    class absent from the rows (or present in all) has AUC nan.
    """

    def keys(self) -> tuple[str, ...]:
        return ("auc_ovr/macro", "auc_ovr/weighted")

    def _tally(self, y_true: np.ndarray, y_score: np.ndarray) -> _Tally:
        n, k = y_score.shape
        names = self._names(k)
        # Per class: rows sorted by score, grouped by distinct score.
        plans = []
        for c in range(k):
            order = np.argsort(y_score[:, c], kind="stable")
            sorted_scores = y_score[order, c]
            starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
            plans.append((order, starts, (y_true[order] == c)))

        def finish(draws: Counts) -> dict[str, np.ndarray]:
            w_all = np.asarray(draws, dtype=np.float64)
            aucs, prevalence = [], []
            for order, starts, positive in plans:
                w = w_all[:, order]
                pos = np.add.reduceat(np.where(positive, w, 0.0), starts, axis=1)
                neg = np.add.reduceat(np.where(positive, 0.0, w), starts, axis=1)
                below = np.cumsum(neg, axis=1) - neg
                wins = np.sum(pos * (below + 0.5 * neg), axis=1)
                n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
                aucs.append(_ratio(wins, n_pos * n_neg, math.nan))
                prevalence.append(n_pos)
            auc = np.stack(aucs, axis=1)
            prev = np.stack(prevalence, axis=1)
            defined = ~np.isnan(auc)
            macro = _ratio(
                np.where(defined, auc, 0).sum(axis=1), defined.sum(axis=1).astype(float), math.nan
            )
            weight = np.where(defined, prev, 0.0)
            weighted = _ratio(
                (np.where(defined, auc, 0) * weight).sum(axis=1), weight.sum(axis=1), math.nan
            )
            out = {f"auc_ovr/{name}": auc[:, i] for i, name in enumerate(names)}
            out.update({"auc_ovr/macro": macro, "auc_ovr/weighted": weighted})
            return out

        return _Tally(counts=np.ones(n, dtype=np.int64), finish=finish)
