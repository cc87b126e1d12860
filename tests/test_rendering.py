"""Terminal rendering: metric names with brackets are shown as written."""

from __future__ import annotations

import io

from rich.console import Console

from helix_tf.rendering import metrics_table
from helix_tf.results import RunResult


def test_sliced_metric_names_are_not_taken_for_markup() -> None:
    result = RunResult(
        workflow="w",
        version=1,
        run_id=1,
        approx=False,
        metrics={"accuracy": 0.8, "accuracy[sex=Female]": 0.9},
        intervals={},
        nodes=(),
        wall_seconds=1.0,
    )
    buf = io.StringIO()
    Console(file=buf, width=120).print(metrics_table(result))
    assert "accuracy[sex=Female]" in buf.getvalue()
