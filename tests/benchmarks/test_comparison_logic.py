"""The whole-process comparisons: how cold_run, edit_types and preprocess_scale order
their runs, form their ratios and check that both sides computed the same thing."""

from __future__ import annotations

import itertools
from typing import Any

import pyarrow as pa
import pytest

from benchmarks import cold_run, edit_types, preprocess_scale
from helix_tf.types import LABEL, ROW_ID

# --------------------------------------------------------------------------- cold_run


def test_each_repeat_runs_every_side_and_exit_mode_once_in_reversed_order() -> None:
    everything = set(itertools.product(cold_run.SIDES, cold_run.EXIT_MODES))
    for i in range(4):
        order = cold_run.run_order(i)
        assert sorted(order) == sorted(everything) and len(order) == len(everything)
        assert order == cold_run.run_order(i + 1)[::-1]


def test_both_sides_end_the_same_way_in_each_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """fast: helix-tf's console script (os._exit) against the script's --fast-exit;
    normal: run_cli without the console script against the script as is."""
    seen: dict[str, list[str]] = {}
    nodes = [
        {"name": name, "kind": kind, "seconds": 1.0}
        for name, kind in (
            ("learner", "train"),
            ("predictions", "predict"),
            ("evaluation", "evaluate"),
        )
    ]

    def fake_helix_json(args: list[str], command: list[str] | None = None, **_: Any) -> Any:
        seen["helix"] = list(command or ["helix-tf"])
        out = {"metrics": {"accuracy": 0.8, "auc": 0.9}, "nodes": nodes, "wall_seconds": 3.0}
        return _measured(), out

    def fake_measured(cmd: list[str], **_: Any) -> Any:
        seen["handwritten"] = [str(c) for c in cmd]
        return _measured('{"in_process_s": 1, "imports_s": 0, "preprocess_s": 0, "predict_s": 0}')

    monkeypatch.setattr(cold_run, "run_helix_json", fake_helix_json)
    monkeypatch.setattr(cold_run, "run_measured", fake_measured)
    for mode, console_script in (("fast", True), ("normal", False)):
        cold_run.run_helix("data", str(tmp_path), mode)
        cold_run.run_handwritten("data", str(tmp_path), mode)
        assert (seen["helix"] == ["helix-tf"]) is console_script
        if not console_script:
            assert "run_cli" in seen["helix"][-1] and "sys.exit" in seen["helix"][-1]
        assert ("--fast-exit" in seen["handwritten"]) is console_script


def _measured(stdout: str = "") -> Any:
    from benchmarks._proc import Measured

    return Measured(
        cmd=["x"],
        returncode=0,
        wall_s=1.0,
        peak_tree_rss_bytes=1,
        maxrss_bytes=1,
        cpu_s=1.0,
        stdout=stdout,
        stderr="",
    )


def test_cold_run_ratios_are_helix_over_handwritten() -> None:
    def runs(*walls: float) -> list[dict[str, float]]:
        return [{"wall_s": w, "cpu_s": w / 2, "accuracy": 0.84, "auc": 0.9} for w in walls]

    c = cold_run.compare(runs(6.0, 5.0, 7.0), runs(5.0, 5.0, 4.0))
    assert c["ratio_median_wall"] == pytest.approx(6.0 / 5.0)
    assert c["ratio_pairs"] == pytest.approx([1.2, 1.0, 1.75])
    assert c["ratio_pairs_median"] == pytest.approx(1.2)
    assert c["ratio_median_cpu"] == pytest.approx(6.0 / 5.0)
    assert c["accuracy_diff"] == 0.0


# --------------------------------------------------------------------------- edit_types


class FakeRuns:
    """Records every run (store, args) and answers with chosen metrics and walls."""

    def __init__(self, scratch_metrics: dict[str, float] | None = None) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.stores: dict[str, int] = {}
        self.scratch_metrics = scratch_metrics

    def __call__(self, store: str, extra: list[str]) -> tuple[float, dict[str, Any]]:
        self.calls.append((store, extra))
        runs_in_store = self.stores[store] = self.stores.get(store, 0) + 1
        reused = runs_in_store > 1  # a store that held the base run before
        metrics = {"accuracy": 0.85}
        if not reused and extra and self.scratch_metrics is not None:
            metrics = self.scratch_metrics
        state = "load" if reused else "compute"
        nodes = [{"name": "learner", "state": state}, {"name": "evaluation", "state": "compute"}]
        return (1.0 if reused else 4.0), {"metrics": metrics, "nodes": nodes}


def test_edit_types_alternates_sides_and_fills_the_reuse_store_first() -> None:
    runs = FakeRuns()
    row = edit_types.measure_edit("edit", ["-p", "x=1"], 3, runs, [])
    # Per repeat: reuse = base run (no edit) then the edit on the same store; scratch = the
    # edit on its own empty store. Repeats alternate which side goes first.
    firsts = []
    calls = iter(runs.calls)
    for _ in range(3):
        side_calls = [next(calls) for _ in range(3)]
        stores = [s for s, _ in side_calls]
        if side_calls[0][1] == []:  # reuse first: base, edit (same store), then scratch
            firsts.append("reuse")
            assert stores[0] == stores[1] != stores[2]
            assert side_calls[1][1] == side_calls[2][1] == ["-p", "x=1"]
        else:
            firsts.append("scratch")
            assert stores[1] == stores[2] != stores[0] and side_calls[1][1] == []
    assert firsts == ["reuse", "scratch", "reuse"]
    assert row["reuse_s"] == 1.0 and row["scratch_s"] == 4.0 and row["speedup"] == 4.0
    assert row["computed"] == ["evaluation"]
    assert row["metrics"] == {"accuracy": 0.85}


def test_edit_types_fails_when_reuse_changes_a_metric() -> None:
    with pytest.raises(edit_types.MetricsDiffer, match=r"edit, repeat 0: accuracy: reuse 0.85"):
        edit_types.measure_edit("edit", ["-p", "x=1"], 2, FakeRuns({"accuracy": 0.86}), [])


# --------------------------------------------------------------------------- preprocess_scale


def _helix(age: list[float], sex: list[int], label: list[int], rows: list[int]) -> pa.Table:
    return pa.table(
        {
            ROW_ID: pa.array(rows, pa.int64()),
            "age": pa.array(age, pa.float32()),
            "sex": pa.array(sex, pa.int32()),
            LABEL: pa.array(label, pa.int8()),
        }
    )


def _pandas(age: list[float], sex: list[int], label: list[int]) -> pa.Table:
    return pa.table(
        {
            "age": pa.array(age, pa.float32()),
            "sex": pa.array(sex, pa.int32()),
            "label": pa.array(label, pa.int8()),
        }
    )


def test_identical_examples_compare_equal() -> None:
    h = {"train": _helix([0.5, -1.0], [0, 1], [1, 0], [0, 1])}
    assert (
        preprocess_scale.compare_examples(h, {"train": _pandas([0.5, -1.0], [0, 1], [1, 0])}) == []
    )


@pytest.mark.parametrize(
    ("pandas", "fragment"),
    [
        (_pandas([0.5, -1.0], [1, 1], [1, 0]), "train/sex: 1 of 2 values differ"),
        (_pandas([0.5, -1.0], [0, 1], [0, 0]), "train/label: 1 of 2 values differ"),
        (_pandas([0.5, -0.9], [0, 1], [1, 0]), "train/age: 1 of 2 values differ"),
        (_pandas([0.5], [0], [1]), "train: helix has 2 rows, pandas 1"),
        (
            _pandas([0.5, -1.0], [0, 1], [1, 0]).rename_columns(["age", "gender", "label"]),
            "train: columns differ",
        ),
    ],
    ids=["index", "label", "number", "rows", "columns"],
)
def test_any_difference_in_values_rows_or_columns_is_named(pandas: pa.Table, fragment: str) -> None:
    h = {"train": _helix([0.5, -1.0], [0, 1], [1, 0], [0, 1])}
    problems = preprocess_scale.compare_examples(h, {"train": pandas})
    assert len(problems) == 1 and problems[0].startswith(fragment), problems


def test_numbers_agree_within_the_tolerance_only() -> None:
    tol = preprocess_scale.FLOAT_TOLERANCE
    h = {"test": _helix([1.0], [0], [0], [0])}
    assert preprocess_scale.compare_examples(h, {"test": _pandas([1.0 + tol / 2], [0], [0])}) == []
    assert preprocess_scale.compare_examples(h, {"test": _pandas([1.0 + tol * 4], [0], [0])})
    assert preprocess_scale.compare_examples(h, {"test": _pandas([float("nan")], [0], [0])})


def test_a_missing_split_is_named() -> None:
    h = {"train": _helix([0.5], [0], [1], [0])}
    problems = preprocess_scale.compare_examples(
        h, {"train": _pandas([0.5], [0], [1]), "test": _pandas([0.5], [0], [1])}
    )
    assert problems == ["test: only pandas has it"]
