"""The iterative benchmark's arithmetic: the oracle, the ratios and the targets.

Synthetic runs (no process is started), so each definition is pinned: a change to what
the oracle counts, or to how a ratio is formed, fails here rather than drifting into
the README's tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from benchmarks import iterative


def node(fp: str, compute: float = 0.0, read: float | None = 0.0, state: str = "compute") -> dict:
    n: dict[str, Any] = {"name": fp, "fingerprint": fp, "state": state, "compute_seconds": compute}
    if read is not None:
        n["read_seconds"] = read
    return n


def run(*nodes: dict, wall: float = 1.0, metrics: dict | None = None) -> dict[str, Any]:
    return {
        "nodes": list(nodes),
        "wall_seconds": wall,
        "helix_wall_seconds": wall * 0.9,
        "compute_seconds": sum(n["compute_seconds"] for n in nodes),
        "load_seconds": 0.0,
        "write_seconds": 0.0,
        "bytes_stored": 10,
        "metrics": metrics or {"accuracy": 0.5},
        "states": {n["name"]: n["state"] for n in nodes},
    }


# --------------------------------------------------------------------------- the oracle


def test_oracle_counts_only_new_fingerprints_less_their_input_reads() -> None:
    runs = [
        run(node("src", 3.0, 0.5), node("model", 10.0, 2.0)),
        # The model is retrained (new fingerprint); the source is not new: not counted,
        # even though this run computed it again.
        run(node("src", 2.0, 0.4), node("model2", 8.0, 1.5)),
        # Nothing new: an evaluation-only iteration costs the oracle nothing.
        run(node("src", 0.0, 0.0, "load"), node("model2", 0.0, 0.0, "load")),
    ]
    assert iterative.oracle_seconds(runs) == [10.5, 6.5, 0.0]
    assert iterative.oracle_seconds(runs, subtract_reads=False) == [13.0, 8.0, 0.0]


def test_a_fingerprint_computed_twice_in_one_run_counts_once() -> None:
    runs = [run(node("a", 2.0, 0.0), {**node("a", 2.0, 0.0), "name": "a_again"})]
    assert iterative.oracle_seconds(runs) == [2.0]


def test_reads_above_compute_never_make_the_oracle_negative() -> None:
    assert iterative.oracle_seconds([run(node("a", 1.0, 1.5))]) == [0.0]


def test_runs_without_read_seconds_are_definition_one_and_say_so() -> None:
    old = [run(node("a", 2.0, read=None))]
    assert iterative.oracle_seconds(old) == iterative.oracle_seconds(old, subtract_reads=False)
    assert iterative.reads_measured(old) is False
    assert iterative.reads_measured([run(node("a", 2.0, 0.1))]) is True


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from("abcdef"),
                st.floats(0, 100, allow_nan=False),
                st.floats(0, 1),
            ),
            max_size=6,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_subtracting_reads_lowers_each_iteration_by_at_most_its_new_reads(
    iterations: list[list[tuple[str, float, float]]],
) -> None:
    runs = [
        run(*[node(fp, compute, compute * share) for fp, compute, share in it]) for it in iterations
    ]
    with_reads = iterative.oracle_seconds(runs, subtract_reads=False)
    without = iterative.oracle_seconds(runs)
    seen: set[str] = set()
    for k, it in enumerate(iterations):
        new: dict[str, tuple[float, float]] = {}
        for fp, compute, share in it:
            if fp not in seen:
                new.setdefault(fp, (compute, compute * share))
        seen |= {fp for fp, _, _ in it}
        assert with_reads[k] == pytest.approx(sum(c for c, _ in new.values()), abs=1e-3)
        assert without[k] == pytest.approx(sum(c - r for c, r in new.values()), abs=1e-3)


# --------------------------------------------------------------------------- the report


def report(runs: dict[str, list[dict[str, Any]]], policies: list[str]) -> dict[str, Any]:
    return iterative.build_report(
        sequence="census10",
        scale=1,
        iterations=list(range(len(next(iter(runs.values()))))),
        policies=policies,
        runs=runs,
        budget_fraction=0.25,
        budget_bytes=None,
        data_dir=Path("."),
        argv=["python -m benchmarks.iterative"],
        started="now",
        problems=[],
    )


def test_ratios_are_cumulative_wall_over_cumulative_wall_and_oracle() -> None:
    helix = [
        run(node("src", 3.0, 1.0), node("m", 10.0, 2.0), wall=20.0),  # init
        run(node("src", 0.0, 0.0, "load"), node("m", 0.0, 0.0, "load"), wall=1.0),  # PPR
        run(node("src", 0.0, 0.0, "load"), node("m2", 9.0, 1.0), wall=12.0),  # L/I
    ]
    none = [run(node("x", 1.0), wall=w) for w in (22.0, 20.0, 21.0)]
    r = report({"helix": helix, "none": none}, ["helix", "none"])
    assert r["cumulative_seconds"] == {"helix": 33.0, "none": 63.0, "oracle": 18.0}
    assert r["oracle_with_reads_seconds"] == 22.0
    assert r["oracle_definition"] == 2 and r["oracle_reads_measured"] is True
    assert r["ratios"]["helix/oracle"] == round(33.0 / 18.0, 3)
    assert r["ratios"]["helix/oracle_with_reads"] == round(33.0 / 22.0, 3)
    assert r["ratios"]["none/helix"] == round(63.0 / 33.0, 3)
    assert r["targets"]["helix/oracle"]["met"] is False
    ppr = r["speedup_none_over_helix_by_type"]["PPR"]
    assert ppr == {"mean": 20.0, "min": 20.0, "iterations": [1]}
    assert r["targets"]["PPR none/helix"]["met"] is True
    assert [it["oracle_seconds"] for it in r["iterations"]] == [10.0, 0.0, 8.0]
    assert [it["oracle_with_reads_seconds"] for it in r["iterations"]] == [13.0, 0.0, 9.0]
    text = iterative.markdown(r)
    assert "oracle, definition 1 (input reads included) | 22.0" in text
    assert "| helix/oracle | 1.83 |" in text and "| helix/oracle_with_reads | 1.50 |" in text


def test_the_helix_oracle_target_is_at_most_1_2() -> None:
    helix = [run(node("a", 10.0, 0.0), wall=12.0)]
    assert report({"helix": helix}, ["helix"])["targets"]["helix/oracle"]["met"] is True
    helix = [run(node("a", 10.0, 0.0), wall=12.01)]
    assert report({"helix": helix}, ["helix"])["targets"]["helix/oracle"]["met"] is False


def test_metrics_that_differ_between_policies_are_named() -> None:
    problems = iterative.all_metric_differences(
        {
            "helix": [run(metrics={"accuracy": 0.5}), run(metrics={"accuracy": 0.7})],
            "none": [run(metrics={"accuracy": 0.5}), run(metrics={"accuracy": 0.7000001})],
        },
        [0, 1],
    )
    assert problems == ["iteration 1: metric 'accuracy': helix=0.7 but none=0.7000001"]


def test_each_policy_gets_a_server_of_its_own() -> None:
    # One server for every policy let the trainer keep one policy's models for the next
    # policy's runs (their learner edits then skipped building and tracing).
    import argparse
    from pathlib import Path

    from benchmarks.iterative import policy_server

    args = argparse.Namespace(server=False, auto_server=True)
    with (
        policy_server(args, extra={}, root=Path.cwd()) as first,
        policy_server(args, extra={}, root=Path.cwd()) as second,
    ):
        assert first is not None and second is not None
        assert first["HELIX_TF_SERVER_DIR"] != second["HELIX_TF_SERVER_DIR"]
        assert first["HELIX_TF_SERVER"] == "on"
    off = argparse.Namespace(server=False, auto_server=False)
    with policy_server(off, extra={}, root=Path.cwd()) as none:
        assert none is None
