"""The numbers behind each view: curves from labels and scores, slices from metric keys.

Plain numpy, no plotting: the charts (``_charts``) and Python users read these.

Examples
--------
>>> import numpy as np
>>> c = roc_curve(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
>>> round(c.auc, 4)
0.75
>>> confusion(np.array([0, 1, 1]), np.array([0.2, 0.9, 0.3])).cells
((1, 0), (1, 1))
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "Curve",
    "Calibration",
    "Confusion",
    "roc_curve",
    "precision_recall_curve",
    "calibration",
    "confusion",
    "confusion_cells",
    "multiclass_confusion",
    "Regression",
    "regression",
    "slices",
]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Curve:
    """A curve over decision thresholds: ``x``/``y`` per threshold, and its area."""

    x: np.ndarray
    y: np.ndarray
    thresholds: np.ndarray
    auc: float
    x_label: str
    y_label: str
    #: The y of a model that scores at random (the diagonal's or the positive rate).
    chance: float | None = None

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            {"threshold": self.thresholds, self.x_label: self.x, self.y_label: self.y}
        )


def _checked(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {p.size}")
    return y, p


def _counts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives when predicting positive at each distinct score, high first."""
    order = np.argsort(-p, kind="stable")
    y, p = y[order], p[order]
    last = np.r_[np.flatnonzero(np.diff(p)), y.size - 1]  # the last row of each distinct score
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return tp.astype(np.float64), fp.astype(np.float64), p[last]


def roc_curve(y_true: Any, y_score: Any) -> Curve:
    """False against true positive rate at every threshold; area = AUC (ties as diagonals)."""
    y, p = _checked(y_true, y_score)
    tp, fp, thresholds = _counts(y, p)
    pos, neg = tp[-1] if tp.size else 0.0, fp[-1] if fp.size else 0.0
    tpr = np.r_[0.0, tp / pos] if pos else np.r_[0.0, np.zeros_like(tp)]
    fpr = np.r_[0.0, fp / neg] if neg else np.r_[0.0, np.zeros_like(fp)]
    area = float(np.trapezoid(tpr, fpr)) if pos and neg else float("nan")
    return Curve(
        x=fpr,
        y=tpr,
        thresholds=np.r_[np.inf, thresholds],
        auc=area,
        x_label="false positive rate",
        y_label="true positive rate",
        chance=None,
    )


def precision_recall_curve(y_true: Any, y_score: Any) -> Curve:
    """Recall against precision at every threshold; area = average precision."""
    y, p = _checked(y_true, y_score)
    tp, fp, thresholds = _counts(y, p)
    pos = tp[-1] if tp.size else 0.0
    recall = tp / pos if pos else np.zeros_like(tp)
    precision = tp / np.maximum(tp + fp, 1.0)
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision)) if pos else float("nan")
    return Curve(  # starting at recall 0, precision 1 (scikit-learn's convention)
        x=np.r_[0.0, recall],
        y=np.r_[1.0, precision],
        thresholds=np.r_[np.inf, thresholds],
        auc=ap,
        x_label="recall",
        y_label="precision",
        chance=float(pos / y.size) if y.size else None,
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """Per score bin: the mean predicted probability, the observed positive rate, rows."""

    predicted: np.ndarray
    observed: np.ndarray
    rows: np.ndarray
    edges: np.ndarray
    #: Expected calibration error: the row-weighted mean |observed − predicted|.
    ece: float

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            {
                "bin_low": self.edges[:-1],
                "bin_high": self.edges[1:],
                "predicted": self.predicted,
                "observed": self.observed,
                "rows": self.rows,
            }
        )


def calibration(y_true: Any, y_score: Any, *, bins: int = 10) -> Calibration:
    """Reliability: scores cut into ``bins`` equal-width bins over [0, 1] (empty bins: nan)."""
    y, p = _checked(y_true, y_score)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    rows = np.bincount(which, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(which, weights=p, minlength=bins) / rows
        observed = np.bincount(which, weights=y, minlength=bins) / rows
    filled = rows > 0
    ece = float(
        np.sum(rows[filled] * np.abs(observed[filled] - predicted[filled])) / max(y.size, 1)
    )
    return Calibration(predicted=predicted, observed=observed, rows=rows, edges=edges, ece=ece)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Confusion:
    """Counts by actual (rows) and predicted (columns) class, in ``labels`` order."""

    labels: tuple[str, ...]
    cells: tuple[tuple[int, ...], ...]
    threshold: float | None = None

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            [list(r) for r in self.cells],
            index=pd.Index([f"actual {c}" for c in self.labels]),
            columns=[f"predicted {c}" for c in self.labels],
        )


def confusion(
    y_true: Any, y_score: Any, *, threshold: float = 0.5, labels: tuple[str, str] = ("0", "1")
) -> Confusion:
    """The 2×2 confusion matrix of a binary classifier, predicting positive at ``threshold``."""
    y, p = _checked(y_true, y_score)
    pred = (p >= threshold).astype(np.int64)
    cells = np.bincount(2 * y + pred, minlength=4).reshape(2, 2)
    return Confusion(
        labels=labels, cells=tuple(tuple(int(v) for v in row) for row in cells), threshold=threshold
    )


def multiclass_confusion(
    y_true: Any, y_score: Any, *, labels: tuple[str, ...] | None = None
) -> Confusion:
    """The K×K confusion matrix of class indices against the most probable class.

    ``y_score`` holds one row of class probabilities per row; ``labels`` names the
    classes (default: their indices).

    >>> multiclass_confusion([0, 2, 2], [[.7, .2, .1], [.1, .1, .8], [.5, .3, .2]]).cells
    ((1, 0, 0), (0, 0, 0), (1, 0, 1))
    """
    s = np.asarray(y_score, dtype=np.float64)
    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    k = s.shape[1]
    if len(y) != len(s):
        raise ValueError(f"labels and scores differ in length: {len(y)} vs {len(s)}")
    names = tuple(labels) if labels is not None and len(labels) == k else tuple(map(str, range(k)))
    cells = np.bincount(y * k + np.argmax(s, axis=1), minlength=k * k).reshape(k, k)
    return Confusion(labels=names, cells=tuple(tuple(int(v) for v in row) for row in cells))


def confusion_cells(metrics: Mapping[str, float]) -> dict[tuple[str, str], float]:
    """``{(true, predicted): count}`` from multiclass confusion keys (overall, not sliced).

    >>> confusion_cells({"confusion/a/b": 3.0, "confusion/a/a[g=x]": 1.0, "confusion/tp": 7.0})
    {('a', 'b'): 3.0}
    """
    cells = {}
    for key, value in metrics.items():
        if not key.startswith("confusion/") or "[" in key:
            continue
        parts = key.split("/")
        if len(parts) == 3:  # binary cells are confusion/tp: one part only
            cells[(parts[1], parts[2])] = value
    return cells


def confusion_of_cells(
    cells: Mapping[tuple[str, str], float], classes: tuple[str, ...] | None = None
) -> Confusion:
    """A :class:`Confusion` from :func:`confusion_cells`, in ``classes`` order (then sorted)."""
    seen = {c for pair in cells for c in pair}
    names = [c for c in (classes or ()) if c in seen] + sorted(seen - set(classes or ()))
    return Confusion(
        labels=tuple(names),
        cells=tuple(tuple(round(cells.get((t, p), 0.0)) for p in names) for t in names),
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Regression:
    """A regression's labels and predictions (on the label's scale), and their residuals."""

    y_true: np.ndarray
    y_pred: np.ndarray
    #: The rows a scatter draws: all, or a seeded sample of ``MAX_POINTS``.
    shown: np.ndarray

    MAX_POINTS = 5000

    @property
    def residual(self) -> np.ndarray:
        """``label - prediction`` per row."""
        return self.y_true - self.y_pred

    @property
    def rmse(self) -> float:
        return float(np.sqrt(np.mean(self.residual**2))) if len(self.y_true) else float("nan")

    @property
    def log_axes(self) -> bool:
        """Whether the values span more than two decades (all positive): log axes."""
        if not len(self.y_true):
            return False
        lo = float(min(self.y_true.min(), self.y_pred.min()))
        hi = float(max(self.y_true.max(), self.y_pred.max()))
        return lo > 0 and hi / lo > 100

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame({"label": self.y_true, "prediction": self.y_pred})


def regression(y_true: Any, y_pred: Any, *, max_points: int = Regression.MAX_POINTS) -> Regression:
    """Labels against predictions; a scatter draws at most ``max_points`` (seeded) rows."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    s = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and predictions differ in length: {y.size} vs {s.size}")
    shown = np.arange(len(y))
    if len(y) > max_points:
        shown = np.sort(np.random.default_rng(0).choice(len(y), max_points, replace=False))
    return Regression(y_true=y, y_pred=s, shown=shown)


_SLICE = re.compile(
    r"^(?:(?P<node>[^/\[]+)/)?(?P<metric>[^\[]+)\[(?P<column>[^=\]]+)=(?P<value>.*)\]$"
)


def slices(metrics: Mapping[str, float]) -> dict[str, dict[str, dict[str, float]]]:
    """Sliced metric keys grouped: ``{column: {metric: {value: number}}}``.

    A key ``accuracy[sex=Female]`` (``slice_by="sex"``) lands under
    ``["sex"]["accuracy"]["Female"]``; the metric over all rows, when present,
    under the value ``"all"``.

    >>> slices({"auc": 0.9, "auc[sex=F]": 0.8, "auc[sex=M]": 0.95})
    {'sex': {'auc': {'all': 0.9, 'F': 0.8, 'M': 0.95}}}
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key, value in sorted(metrics.items()):
        m = _SLICE.match(key)
        if m is None:
            continue
        prefix = f"{m['node']}/" if m["node"] else ""
        metric = prefix + m["metric"]
        per_metric = out.setdefault(m["column"], {}).setdefault(metric, {})
        if not per_metric and metric in metrics:
            per_metric["all"] = float(metrics[metric])
        per_metric[m["value"]] = float(value)
    return out
