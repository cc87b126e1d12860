"""What a trained model learned, per feature: permutation importance and linear weights.

:class:`Explain` is the spec of an ``explain`` node (``Workflow.explain``): its
inputs are a model and the examples it is judged on; its output is one JSON
artifact, computed once per model and split and then loaded like any node's.
It holds:

- **permutation importance**, for every learner: each feature's columns are
  shuffled across the rows of the evaluation split (``repeats`` times, seeded)
  and the model scored again; a feature's importance is how much each scoring
  gets worse (the mean over repeats, with its standard deviation). A feature
  whose linear weights are all exactly zero contributes nothing: 0, not scored.
- **linear weights**, where the model has a linear part (``Linear``, the wide
  part of ``WideDeep``): per feature, its weights by value name (vocabulary
  entries, bucket intervals) with the largest positive and negative ones.

Every task is explained: the scorings follow the label (:data:`DEFAULT_SCORINGS`:
AUC and log loss for a binary label, accuracy and log loss over the classes for a
multiclass one, RMSE and R² on the original scale for a numeric one), and a
scoring that does not fit the label is a compile-time error
(:func:`scoring_problem`, decided by the metric's own task check). A multiclass
linear model has one weight per value *and class* (a softmax over one logit per
class); they are kept per class, and the overall tops name the class each weight
pushes towards (``"IF → Ideal"``: clarity IF, class Ideal): the largest absolute
weight over the classes would hide which class a value argues for.

The computation is numpy over a ``score`` function (rows → probabilities, class
probabilities or predicted values), so it is tested without TensorFlow; the engine
passes the Keras model's scorer.

Examples
--------
>>> import numpy as np
>>> x = {"a": np.array([[0.], [1.], [0.], [1.]]), "b": np.array([[5.], [5.], [5.], [5.]])}
>>> score = lambda x: 0.1 + 0.8 * x["a"].ravel()  # only "a" matters
>>> out = permutation_importance(score, x, np.array([0, 1, 0, 1]),
...     [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric"}], repeats=2)
>>> out["features"]["b"]["auc"], out["features"]["a"]["auc"] > 0
(0.0, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from helix_tf.components.base import Operator, normalized
from helix_tf.components.metrics import (
    AUC,
    MAE,
    R2,
    RMSE,
    Accuracy,
    LogLoss,
    Metric,
    MulticlassAccuracy,
    MulticlassLogLoss,
    metric_problem,
)

__all__ = [
    "DEFAULT_SCORINGS",
    "Explain",
    "SCORINGS",
    "linear_weights",
    "permutation_importance",
    "scoring_problem",
    "scorings_for",
]

#: Scorings permutation importance can use: name → (metric, +1 if higher is better
#: else -1). Which labels a scoring fits is its metric's ``TASKS``: a task type adds
#: its scorings by one entry each (and its defaults to :data:`DEFAULT_SCORINGS`).
SCORINGS: dict[str, tuple[Metric, int]] = {
    "auc": (AUC(), +1),
    "log_loss": (LogLoss(), -1),
    "accuracy": (Accuracy(), +1),
    "multiclass_accuracy": (MulticlassAccuracy(), +1),
    "multiclass_log_loss": (MulticlassLogLoss(), -1),
    "rmse": (RMSE(), -1),
    "mae": (MAE(), -1),
    "r2": (R2(), +1),
}
#: The scorings of an explain node that names none, by the task of its label.
DEFAULT_SCORINGS: dict[str, tuple[str, ...]] = {
    "binary": ("auc", "log_loss"),
    "multiclass": ("multiclass_accuracy", "multiclass_log_loss"),
    "regression": ("rmse", "r2"),
}


def scorings_for(task: str) -> list[str]:
    """The scorings that fit a label of ``task``, in :data:`SCORINGS` order."""
    return [name for name, (metric, _) in SCORINGS.items() if task in metric.TASKS]


def scoring_problem(name: str, label: Any) -> str | None:
    """Why scoring ``name`` cannot judge a model of ``label`` (None: it can).

    The decision is the metric's (:func:`~helix_tf.components.metrics.metric_problem`,
    the check evaluation metrics get); the message names the scoring, the label and
    the scorings that fit it.
    """
    task = getattr(label, "TASK", "binary")
    metric = SCORINGS[name][0]
    if metric_problem(metric, label) is None:
        return None
    fits = " or ".join(metric.TASKS)
    valid = ", ".join(repr(s) for s in scorings_for(task))
    return (
        f"scoring {name!r} fits {fits} labels, but label {type(label).__name__}"
        f"({label.column!r}) makes a {task} task; the scorings for a {task} label are: {valid}"
    )


Score = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def _scorings(scoring: Any) -> Any:
    """One scoring name or several, as a tuple (None: the label's defaults)."""
    if scoring is None:
        return None
    return (scoring,) if isinstance(scoring, str) else tuple(scoring)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Explain(Operator):
    """Permutation importance of every feature, and the linear weights where there are some.

    Parameters
    ----------
    repeats : int
        Shuffles per feature; the importance is their mean (and standard deviation).
    max_rows : int
        Rows of the split used at most (a seeded sample beyond that): the cost is
        ``repeats × features`` scorings of that many rows.
    seed : int
        Seeds the row sample and every shuffle: the result is deterministic.
    scoring : tuple of str, optional
        Names from :data:`SCORINGS` that fit the label; the first orders the
        features. None (the default): the label's :data:`DEFAULT_SCORINGS`,
        which the compiler fills in (so the fingerprint holds the scorings used).
    top : int
        Positive and negative weights kept per feature (and overall).
    """

    KIND: ClassVar[str] = "explain"
    repeats: int = 2
    max_rows: int = 5_000
    seed: int = 0
    scoring: tuple[str, ...] | None = normalized(_scorings, default=None)
    top: int = 10

    def for_label(self, label: Any) -> tuple[Explain, list[str]]:
        """This spec with its scorings resolved for ``label``, and the problems with them.

        No scoring named: the label task's defaults. Each named scoring must fit the
        label (:func:`scoring_problem`).
        """
        task = getattr(label, "TASK", "binary")
        if self.scoring is None:
            return self.with_params(scoring=DEFAULT_SCORINGS[task]), []  # type: ignore[return-value]
        problems = [p for s in self.scoring if s in SCORINGS if (p := scoring_problem(s, label))]
        return self, problems

    def validate(self) -> list[str]:
        problems = []
        for name in ("repeats", "max_rows", "top"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be an integer >= 1, but got {value!r}")
        if self.scoring is None:
            return problems
        if not isinstance(self.scoring, tuple):
            unknown = [self.scoring]
        else:
            unknown = [s for s in self.scoring if s not in SCORINGS]
        if not self.scoring or unknown:
            problems.append(
                f"scoring must name one or more of {sorted(SCORINGS)}, but got {self.scoring!r}"
            )
        return problems


def _columns_of(spec: Mapping[str, Any]) -> list[str]:
    """The model-input arrays of one feature (a bag has two)."""
    name = spec["name"]
    return [f"{name}__idx", f"{name}__val"] if spec["kind"] == "bag" else [name]


def _scores(y: np.ndarray, p: np.ndarray, scoring: Sequence[str]) -> dict[str, float]:
    out = {}
    for name in scoring:
        metric, _ = SCORINGS[name]
        out[name] = float(next(iter(metric.compute(y, p).values())))
    return out


def permutation_importance(
    score: Score,
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    features: Sequence[Mapping[str, Any]],
    *,
    repeats: int = 3,
    seed: int = 0,
    scoring: Sequence[str] = DEFAULT_SCORINGS["binary"],
    zero: Sequence[str] = (),
) -> dict[str, Any]:
    """How much each scoring worsens when one feature's values are shuffled across rows.

    ``x`` holds the model inputs (``arrays_from_table``), ``y`` the labels (0/1,
    class indices or values) and ``score`` returns, per row, a probability, a row
    of class probabilities or a predicted value, as the scorings expect; features
    named in ``zero`` contribute nothing (all their weights are 0) and get
    importance 0 without being scored. Returns ``{"baseline": {scoring: value},
    "features": {feature: {scoring: mean worsening, scoring + "_std": ...}},
    "rows": n, "repeats": repeats, "scoring": [...], "direction": {scoring: +1 if
    higher is better else -1}}``; a worsening is positive whatever the direction
    (a drop of AUC, a rise of RMSE). Features are ordered by the first scoring,
    most important first.
    """
    y = np.asarray(y)
    baseline = _scores(y, score(x), scoring)
    n = len(y)
    result: dict[str, dict[str, float]] = {}
    for k, spec in enumerate(features):
        name = spec["name"]
        if name in zero:
            result[name] = {key: 0.0 for s in scoring for key in (s, f"{s}_std")}
            continue
        # Every repeat's shuffled copy stacked into one call of the model (a call's fixed
        # cost is most of its time at these sizes); the other features repeat as they are.
        perms = [np.random.default_rng([seed, k, r]).permutation(n) for r in range(repeats)]
        own = set(_columns_of(spec))
        stacked = {
            col: np.concatenate([a[p] for p in perms]) if col in own else _tile(a, repeats)
            for col, a in x.items()
        }
        scored = np.asarray(score(stacked))
        scores = scored.reshape(repeats, n, *scored.shape[1:])  # class probabilities stay rows
        draws: dict[str, list[float]] = {s: [] for s in scoring}
        for r in range(repeats):
            for s, value in _scores(y, scores[r], scoring).items():
                draws[s].append(SCORINGS[s][1] * (baseline[s] - value))
        result[name] = {}
        for s, values in draws.items():
            result[name][s] = float(np.mean(values))
            result[name][f"{s}_std"] = float(np.std(values))
    first = scoring[0]
    ordered = sorted(result, key=lambda f: (-_finite(result[f][first]), f))
    return {
        "baseline": baseline,
        "features": {f: result[f] for f in ordered},
        "rows": n,
        "repeats": repeats,
        "scoring": list(scoring),
        "direction": {s: SCORINGS[s][1] for s in scoring},
    }


def _tile(a: np.ndarray, times: int) -> np.ndarray:
    return np.concatenate([a] * times) if times > 1 else a


def _finite(value: float) -> float:
    return value if np.isfinite(value) else -np.inf


def value_label(names: Sequence[str] | None, index: int) -> str:
    """The name of index ``index`` of a feature's values (``#index`` when unnamed)."""
    if names is not None and 0 <= index < len(names):
        return str(names[index])
    return f"#{index}"


def linear_weights(
    weights: Mapping[str, np.ndarray],
    features: Sequence[Mapping[str, Any]],
    names: Mapping[str, Sequence[str]],
    *,
    top: int = 10,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Each feature's linear weights, largest positive and negative first, by value name.

    ``weights`` maps a feature to its weight array (one row per value, one for a
    numeric feature; one column per output), ``names`` a feature to its value
    names (vocabulary, bucket intervals). Returns ``{"features": {feature:
    {"weights": n, "zero": n, "norm": L1 norm, "positive": [[label, w], ...],
    "negative": [...]}}, "positive": [[feature, label, w], ...], "negative":
    [...]}`` (overall tops).

    With ``classes`` (a multiclass model: one column per class) the weights are
    kept per class: each feature and the result get ``"classes": {class:
    {"positive": ..., "negative": ...}}``, and in the feature's and the overall
    tops a label names its class (``"value → class"``). ``zero`` counts weights
    over every class, so a feature is all-zero only when it is for every class.
    """
    k = len(classes) if classes else 1
    out: dict[str, Any] = {}
    everything: list[tuple[float, str, str]] = []
    per_class: dict[str, list[tuple[float, str, str]]] = {str(c): [] for c in classes or ()}
    for spec in features:
        name = spec["name"]
        if name not in weights:
            continue
        w = np.asarray(weights[name], dtype=np.float64)
        w = w.reshape(-1, k) if k > 1 else w.reshape(-1, 1)
        labels = [value_label(names.get(name), i) for i in range(w.shape[0])]
        if spec["kind"] == "numeric":
            labels = [name]
        pairs: list[tuple[float, str]] = []
        entry: dict[str, Any] = {
            "weights": int(w.size),
            "zero": int((w == 0).sum()),
            "norm": float(np.abs(w).sum()),
        }
        if k > 1:
            entry["classes"] = {}
            for j, cls in enumerate(per_class):
                own = [(float(v), labels[i]) for i, v in enumerate(w[:, j])]
                entry["classes"][cls] = _tops(own, top)
                per_class[cls].extend((v, name, label) for v, label in own if v != 0)
                pairs.extend((v, f"{label} → {cls}") for v, label in own)
        else:
            pairs = [(float(v), labels[i]) for i, v in enumerate(w[:, 0])]
        entry.update(_tops(pairs, top))
        out[name] = entry
        everything.extend((v, name, label) for v, label in pairs if v != 0)
    result: dict[str, Any] = {"features": out, **_overall(everything, top)}
    if k > 1:
        result["classes"] = {cls: _overall(found, top) for cls, found in per_class.items()}
    return result


def _tops(pairs: Sequence[tuple[float, str]], top: int) -> dict[str, list[list[Any]]]:
    """The ``top`` largest positive and most negative ``(weight, label)`` pairs."""
    pos = sorted((p for p in pairs if p[0] > 0), key=lambda p: -p[0])[:top]
    neg = sorted((p for p in pairs if p[0] < 0), key=lambda p: p[0])[:top]
    return {
        "positive": [[label, v] for v, label in pos],
        "negative": [[label, v] for v, label in neg],
    }


def _overall(found: list[tuple[float, str, str]], top: int) -> dict[str, list[list[Any]]]:
    """The overall tops of ``(weight, feature, label)``: largest positive, most negative."""
    found = sorted(found, key=lambda t: -t[0])
    return {
        "positive": [[f, label, v] for v, f, label in found if v > 0][:top],
        "negative": [[f, label, v] for v, f, label in reversed(found) if v < 0][:top],
    }
