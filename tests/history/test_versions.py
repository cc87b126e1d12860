"""Public history/diff/comparison API: paired bootstrap and logical diff of variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helix_tf import history
from helix_tf.errors import ConfigError


def _preds(scores: np.ndarray, labels: np.ndarray, ids: np.ndarray | None = None):
    ids = np.arange(len(labels)) if ids is None else ids
    return history.Predictions(row_ids=ids, labels=labels, scores=scores)


def test_paired_bootstrap_excludes_zero_only_for_a_real_difference() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    noise = rng.normal(0, 1, 2000)
    weak = _preds(1 / (1 + np.exp(-(y - 0.5) * 0.5 - noise)), y)
    strong = _preds(1 / (1 + np.exp(-(y - 0.5) * 3 - noise)), y)
    better = history.compare_predictions(weak, strong, samples=200)
    assert better.difference > 0 and better.significant and better.low > 0
    same = history.compare_predictions(weak, weak, samples=200)
    assert same.difference == 0 and not same.significant


def test_pairs_rows_by_id_whatever_their_order() -> None:
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.array([0.1, 0.9, 0.2, 0.8, 0.7, 0.3])
    perm = np.array([5, 3, 1, 0, 2, 4])
    a = _preds(s, y)
    b = _preds(s[perm], y[perm], ids=perm)
    d = history.compare_predictions(a, b, samples=50)
    assert d.difference == 0 and d.rows == 6
    with pytest.raises(ConfigError, match="share no rows"):
        history.compare_predictions(a, _preds(s, y, ids=np.arange(6) + 100))


def test_logical_diff_lists_only_what_the_overrides_change(tiny_census_config: Path) -> None:
    changes = history.logical_diff(tiny_census_config, {"learner.l2": 0.001})
    by_name = {c["name"]: c for c in changes}
    assert set(by_name) == {"learner", "predictions", "evaluation"}
    assert "learner.l2 0.0 → 0.001" in by_name["learner"]["details"]


def test_describe_names_where_each_node_was_declared(tiny_census_config: Path) -> None:
    view = history.describe(tiny_census_config)
    learner = view.node("learner")
    assert learner.op == "Linear" and learner.file == str(tiny_census_config.resolve())
    assert (
        "learners.Linear" in tiny_census_config.read_text().splitlines()[learner.line - 1]
        or "wf.train" in tiny_census_config.read_text().splitlines()[learner.line - 1]
    )
