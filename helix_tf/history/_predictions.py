"""Stored predictions of a variant, and a paired bootstrap between two variants.

- :func:`stored_predictions` — the stored scores of a run of a variant;
- :func:`compare_predictions` — a paired-bootstrap interval on the difference of a
  metric between two variants scored on the same rows.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from helix_tf.errors import ConfigError, StoreError
from helix_tf.history._versions import Params, _compiled
from helix_tf.roles import Role, Split

if TYPE_CHECKING:
    from helix_tf.validation import Validation

__all__ = ["Predictions", "MetricDifference", "stored_predictions", "compare_predictions"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Predictions:
    """Scores of one predict node: row ids, 0/1 labels and positive-class scores."""

    row_ids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MetricDifference:
    """``new - old`` of one metric on the same rows, with a paired-bootstrap interval."""

    metric: str
    old: float
    new: float
    difference: float
    low: float
    high: float
    rows: int

    @property
    def significant(self) -> bool:
        """The interval on the difference excludes 0."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "significant": self.significant}


def stored_predictions(
    config: str | os.PathLike[str],
    *,
    params: Params = (),
    node: str | None = None,
    validation: Validation | None = None,
    data_dir: str | None = None,
    store: str | None = None,
) -> Predictions:
    """The stored scores of ``node`` (default: the only predict node) of a variant.

    Raises :class:`~helix_tf.errors.StoreError` when they are not stored: run the
    variant with ``materialize="all"`` first.
    """
    from helix_tf._session import default_home
    from helix_tf.engine import tables
    from helix_tf.reuse.store import ArtifactStore

    loaded, compiled = _compiled(config, params, data_dir, validation)
    predicts = [n for n in compiled.nodes if n.role == Role.PREDICT]
    if node is None and len(predicts) != 1:
        raise ConfigError(
            f"workflow {compiled.name!r} has {len(predicts)} predict nodes; pass node=... "
            f"(one of {', '.join(n.name for n in predicts) or 'none'})"
        )
    target = compiled.node(node) if node is not None else predicts[0]
    url = store or str(default_home(loaded.path))
    artifacts = ArtifactStore(url, writing=False)
    manifest = artifacts.lookup(target.fingerprint)
    local = artifacts.open_local(manifest) if manifest is not None else None
    table = tables.read_split(local, manifest.meta.get("split", Split.TEST)) if local else None
    if table is None:
        raise StoreError(
            f"the predictions of {target.name!r} ({target.fingerprint[:12]}) are not in store "
            f"{url}; run this variant with materialize='all' first"
        )
    from helix_tf.types import LABEL, ROW_ID, SCORE

    return Predictions(
        row_ids=table.column(ROW_ID).to_numpy(),
        labels=table.column(LABEL).to_numpy().astype(np.int64),
        scores=table.column(SCORE).to_numpy().astype(np.float64),
    )


def compare_predictions(
    old: Predictions,
    new: Predictions,
    *,
    metric: Any = None,
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> MetricDifference:
    """Paired bootstrap of ``metric(new) - metric(old)`` over the rows both scored.

    ``metric`` is a ``helix_tf.metrics`` operator with one key (default AUC). Each
    bootstrap sample draws rows with replacement and scores both variants on the
    same rows, so the interval reflects the difference, not each run's own noise.

    >>> y = np.array([0, 1] * 50); ids = np.arange(100)
    >>> a = Predictions(row_ids=ids, labels=y, scores=np.linspace(0, 1, 100))
    >>> b = Predictions(row_ids=ids, labels=y, scores=y * 0.9 + 0.05)
    >>> d = compare_predictions(a, b, samples=200)
    >>> round(d.difference, 2), d.significant
    (0.49, True)
    """
    from helix_tf.components.metrics import AUC

    metric = metric if metric is not None else AUC()
    common, ia, ib = np.intersect1d(old.row_ids, new.row_ids, return_indices=True)
    if not len(common):
        raise ConfigError("the two predictions share no rows: they were scored on different data")
    if not np.array_equal(old.labels[ia], new.labels[ib]):
        raise ConfigError("the two predictions disagree on labels of the same rows")
    y, sa, sb = old.labels[ia], old.scores[ia], new.scores[ib]

    def value(rows: np.ndarray | slice) -> tuple[float, float]:
        a = metric.compute(y[rows], sa[rows])
        b = metric.compute(y[rows], sb[rows])
        key = sorted(a)[0]
        return a[key], b[key]

    key = sorted(metric.compute(y, sa))[0]
    va, vb = value(slice(None))
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(samples):
        rows = rng.integers(0, len(y), len(y))
        if len(np.unique(y[rows])) < 2:
            continue
        a, b = value(rows)
        diffs.append(b - a)
    tail = (1 - level) / 2 * 100
    low, high = (
        (float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail)))
        if diffs
        else (float("nan"), float("nan"))
    )
    return MetricDifference(
        metric=key, old=va, new=vb, difference=vb - va, low=low, high=high, rows=len(y)
    )
