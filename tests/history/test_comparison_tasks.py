"""Which way is better for the multiclass and regression metric keys (run comparison)."""

from __future__ import annotations

import pytest

from helix_tf.history import metric_direction


@pytest.mark.parametrize(
    ("key", "direction"),
    [
        ("rmse", "lower"),
        ("rmse@log", "lower"),
        ("mae[color=E]", "lower"),
        ("mape", "lower"),
        ("r2@log", "higher"),
        ("accuracy", "higher"),
        ("top2_accuracy", "higher"),
        ("f1/macro", "higher"),
        ("recall/Very Good", "higher"),
        ("auc_ovr/Ideal", "higher"),
        ("log_loss", "lower"),
        ("confusion/Ideal/Premium", None),
        ("confusion/Fair/Fair[color=E]", None),
        ("evaluation/confusion/a/b", None),
        ("residual/mean", None),
        ("residual@log/p50", None),
        ("confusion/fp", "lower"),  # binary cells keep their direction
        ("confusion/tp", None),
    ],
)
def test_direction_of_task_metric_keys(key: str, direction: str | None) -> None:
    assert metric_direction(key) == direction
