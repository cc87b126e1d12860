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

The computation is numpy over a ``score`` function (rows → probabilities), so it
is tested without TensorFlow; the engine passes the Keras model's scorer.

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

from helix_tf.components.base import Operator
from helix_tf.components.metrics import AUC, LogLoss, Metric

__all__ = ["Explain", "SCORINGS", "permutation_importance", "linear_weights"]

#: Scorings permutation importance can use: name → (metric, +1 if higher is better
#: else -1). A task type adds its own by one entry each.
SCORINGS: dict[str, tuple[Metric, int]] = {"auc": (AUC(), +1), "log_loss": (LogLoss(), -1)}

Score = Callable[[Mapping[str, np.ndarray]], np.ndarray]


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
    scoring : tuple of str
        Names from :data:`SCORINGS` (``"auc"``, ``"log_loss"``); the first orders
        the features.
    top : int
        Positive and negative weights kept per feature (and overall).
    """

    KIND: ClassVar[str] = "explain"
    repeats: int = 2
    max_rows: int = 5_000
    seed: int = 0
    scoring: tuple[str, ...] = ("auc", "log_loss")
    top: int = 10

    def __post_init__(self) -> None:
        scoring = (self.scoring,) if isinstance(self.scoring, str) else tuple(self.scoring)
        object.__setattr__(self, "scoring", scoring)
        super().__post_init__()

    def validate(self) -> list[str]:
        problems = []
        for name in ("repeats", "max_rows", "top"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be an integer >= 1, but got {value!r}")
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
    scoring: Sequence[str] = ("auc", "log_loss"),
    zero: Sequence[str] = (),
) -> dict[str, Any]:
    """How much each scoring worsens when one feature's values are shuffled across rows.

    ``x`` holds the model inputs (``arrays_from_table``), ``y`` the 0/1 labels;
    features named in ``zero`` contribute nothing (all their weights are 0) and
    get importance 0 without being scored. Returns ``{"baseline": {scoring:
    value}, "features": {feature: {scoring: mean worsening, scoring + "_std":
    ...}}, "rows": n, "repeats": repeats, "scoring": [...]}``; features are
    ordered by the first scoring, most important first.
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
        scores = np.asarray(score(stacked)).reshape(repeats, n)
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
) -> dict[str, Any]:
    """Each feature's linear weights, largest positive and negative first, by value name.

    ``weights`` maps a feature to its weight array (one per value; one for a
    numeric feature), ``names`` a feature to its value names (vocabulary,
    bucket intervals). Returns ``{"features": {feature: {"weights": n, "zero":
    n, "norm": L1 norm, "positive": [[label, w], ...], "negative": [...]}},
    "positive": [[feature, label, w], ...], "negative": [...]}`` (overall tops).
    """
    out: dict[str, Any] = {}
    everything: list[tuple[float, str, str]] = []
    for spec in features:
        name = spec["name"]
        if name not in weights:
            continue
        w = np.asarray(weights[name], dtype=np.float64).reshape(-1)
        labels = [name] if spec["kind"] == "numeric" else None
        pairs = [
            (float(v), labels[0] if labels else value_label(names.get(name), i))
            for i, v in enumerate(w)
        ]
        everything.extend((v, name, label) for v, label in pairs if v != 0)
        pos = sorted((p for p in pairs if p[0] > 0), key=lambda p: -p[0])[:top]
        neg = sorted((p for p in pairs if p[0] < 0), key=lambda p: p[0])[:top]
        out[name] = {
            "weights": int(w.size),
            "zero": int((w == 0).sum()),
            "norm": float(np.abs(w).sum()),
            "positive": [[label, v] for v, label in pos],
            "negative": [[label, v] for v, label in neg],
        }
    everything.sort(key=lambda t: -t[0])
    return {
        "features": out,
        "positive": [[f, label, v] for v, f, label in everything if v > 0][:top],
        "negative": [[f, label, v] for v, f, label in reversed(everything) if v < 0][:top],
    }
