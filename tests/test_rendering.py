"""Terminal rendering: metric names with brackets are shown as written."""

from __future__ import annotations

import io

from rich.console import Console

from helix_tf.rendering import metrics_table, retrained_table
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


def test_retrained_table_shows_both_runs_and_the_difference() -> None:
    result = RunResult(
        workflow="w",
        version=2,
        run_id=7,
        approx=False,
        metrics={"accuracy": 0.81, "auc[sex=Male]": 0.9},
        intervals={},
        nodes=(),
        wall_seconds=1.0,
        retrained={
            "dropped": {"examples": {"noise": 500}},
            "full_run_id": 6,
            "full_metrics": {"accuracy": 0.8, "auc[sex=Male]": 0.92},
            "full_wall_seconds": 2.0,
            "difference": {"accuracy": 0.81 - 0.8, "auc[sex=Male]": 0.9 - 0.92},
        },
    )
    buf = io.StringIO()
    Console(file=buf, width=140).print(retrained_table(result))
    text = buf.getvalue()
    assert "noise (500 weights)" in text
    assert "run 6" in text
    assert "+0.0100" in text and "-0.0200" in text
    assert "auc[sex=Male]" in text


def test_approximate_intervals_are_labelled_evaluation_only() -> None:
    result = RunResult(
        workflow="w",
        version=1,
        run_id=1,
        approx=True,
        metrics={"accuracy": 0.79},
        intervals={"accuracy": (0.783, 0.796)},
        nodes=(),
        wall_seconds=1.0,
    )
    buf = io.StringIO()
    Console(file=buf, width=200).print(metrics_table(result))
    text = " ".join(buf.getvalue().split())  # the caption wraps to the table's width
    assert "95% interval (evaluation only)" in text
    assert "not the variance of training on a sample" in text
    assert result.to_dict()["interval_kind"] == "evaluation_bootstrap_95"


def test_nan_and_infinite_metrics_never_show_as_signed_nan() -> None:
    """An AUC on a slice with one class is NaN: its value and its differences read
    ``n/a`` in every column (never ``+nan``); infinities keep their sign."""
    from helix_tf.history import MetricChange, RunComparison
    from helix_tf.rendering import number

    nan, inf = float("nan"), float("inf")
    changes = (
        MetricChange(
            name="auc[sex=Female]",
            value=nan,
            direction="higher",
            previous=0.7,
            previous_version=1,
            best=0.7,
            best_version=1,
            best_run=1,
        ),
        MetricChange(
            name="auc",
            value=0.8,
            direction="higher",
            previous=nan,
            previous_version=1,
            best=nan,
            best_version=1,
            best_run=1,
        ),
        MetricChange(
            name="log_loss",
            value=inf,
            direction="lower",
            previous=0.5,
            previous_version=1,
            best=0.5,
            best_version=1,
            best_run=1,
        ),
    )
    result = RunResult(
        workflow="w",
        version=2,
        run_id=2,
        approx=False,
        metrics={"auc[sex=Female]": nan, "auc": 0.8, "log_loss": inf},
        intervals={},
        nodes=(),
        wall_seconds=1.0,
        comparison=RunComparison(
            version=2,
            run_id=2,
            approx=False,
            previous_version=1,
            previous_run=1,
            metrics=changes,
            changes=(),
        ),
    )
    buf = io.StringIO()
    Console(file=buf, width=200).print(metrics_table(result))
    text = buf.getvalue()
    assert "nan" not in text.lower().replace("n/a", ""), text
    assert "n/a" in text and "+inf" in text and " inf " in text
    assert [number(v, "+.4f") for v in (nan, inf, -inf, 0.1)] == ["n/a", "+inf", "-inf", "+0.1000"]


def test_json_output_is_strict_json_with_nan_as_null() -> None:
    """``--json`` (run, history, diff, plan) goes through ``json_text``: NaN and
    infinities are ``null``, never the ``NaN`` that strict readers (jq) reject."""
    import json

    from helix_tf.json_output import json_text

    nan = float("nan")
    result = RunResult(
        workflow="w",
        version=1,
        run_id=1,
        approx=False,
        metrics={"auc[sex=Female]": nan, "auc": 0.8, "log_loss": float("inf")},
        intervals={},
        nodes=(),
        wall_seconds=1.0,
    )
    text = json_text(result.to_dict())

    def strict(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    parsed = json.loads(text, parse_constant=strict)
    assert parsed["metrics"] == {"auc[sex=Female]": None, "auc": 0.8, "log_loss": None}
    buf = io.StringIO()
    Console(file=buf, width=200).print_json(text)
    json.loads(buf.getvalue(), parse_constant=strict)


def test_plan_reasons_that_quote_paths_in_brackets_are_not_taken_for_markup() -> None:
    """Before: `helix-tf plan --data-dir ELSEWHERE` crashed with rich's MarkupError on
    "closing tag '[/work/data/adult.test]' ... doesn't match any open tag"."""
    from helix_tf.rendering import plan_table
    from helix_tf.results import NodeDecision, PlanResult

    reason = "changed: rows.test 1 → 1 items -[/work/data/adult.test] +[/tmp/adult.test]"
    result = PlanResult(
        workflow="w",
        approx=False,
        estimated_seconds=1.0,
        nodes=(
            NodeDecision(
                name="rows[0]",
                kind="source",
                state="compute",
                compute_cost=1.0,
                load_cost=None,
                reason=reason,
                fingerprint="f" * 32,
            ),
        ),
    )
    buf = io.StringIO()
    Console(file=buf, width=300).print(plan_table(result))
    assert reason in buf.getvalue() and "rows[0]" in buf.getvalue()


def test_progress_lines_are_printed_as_written() -> None:
    """A node name with brackets is a name, not console markup (it vanished, or crashed)."""
    from helix_tf.events import TrainingStarted
    from helix_tf.rendering import ProgressPrinter

    buf = io.StringIO()
    ProgressPrinter(Console(file=buf, width=200), True)(TrainingStarted(node="model[/x]", rows=5))
    assert "training model[/x] on 5 rows" in buf.getvalue()


def test_a_run_without_another_version_to_compare_with_says_so_plainly() -> None:
    """Before: "v1: no earlier run of this kind to compare with" under a table comparing
    the rerun with run 1 of v1 (what it lacks is a run of another version)."""
    import dataclasses

    from helix_tf.history import RunComparison
    from helix_tf.rendering import changes_text

    comparison = RunComparison(
        version=1,
        run_id=2,
        approx=False,
        previous_version=None,
        previous_run=None,
        metrics=(),
        changes=(),
    )
    result = RunResult(
        workflow="w",
        version=1,
        run_id=2,
        approx=False,
        metrics={},
        intervals={},
        nodes=(),
        wall_seconds=1.0,
        comparison=comparison,
    )
    assert changes_text(result) == "v1: no run of another version to compare with yet"
    approx = dataclasses.replace(result, comparison=dataclasses.replace(comparison, approx=True))
    assert "no approximate run of another version" in changes_text(approx)
