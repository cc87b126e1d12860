"""Several metrics at once: their results merged, their keys checked for collisions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from helix_tf.components.metrics._base import Metric, _describe
from helix_tf.components.metrics._custom import Custom
from helix_tf.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


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
    >>> from helix_tf.metrics import AUC, Accuracy
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
    problems = metric_key_problems(metrics)
    if problems:
        raise ConfigError(problems)


def metric_key_problems(metrics: Sequence[Metric]) -> list[str]:
    """Non-metrics, and metrics whose declared keys collide (``Custom(name="auc")`` beside
    ``AUC()``): what the compiler reports before any work, and evaluation refuses."""
    problems = [
        f"metrics[{i}] must be a Metric (e.g. metrics.Accuracy()), but got {m!r}"
        for i, m in enumerate(metrics)
        if not isinstance(m, Metric)
    ]
    if problems:
        return problems
    owner: dict[str, Metric] = {}
    for metric in metrics:
        declared = metric.keys()
        for key in declared:
            if key in owner and not _same_definition(owner[key], metric):
                problems.append(_duplicate(key, owner[key], metric))
            else:
                owner[key] = metric
    return problems


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
