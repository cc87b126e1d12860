"""helix_tf.history: metric changes, history entries and version diffs from the metadata."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from helix_tf.errors import StoreError
from helix_tf.history import (
    TAG_KEY,
    compare_metrics,
    compare_with_history,
    history_entries,
    metric_base,
    metric_direction,
    recorded_runs,
    select_metrics,
    tag_of,
    version_diff,
    workflow_changes,
)
from helix_tf.reuse.metadata import MetadataStore


@dataclasses.dataclass
class _Run:
    id: int
    version: int
    metrics: dict[str, float]


@pytest.mark.parametrize(
    ("key", "base", "direction"),
    [
        ("accuracy", "accuracy", "higher"),
        ("accuracy@0.3[sex=Female]", "accuracy", "higher"),
        ("holdout/auc", "auc", "higher"),
        ("log_loss", "log_loss", "lower"),
        ("holdout/log_loss[sex=Male]", "log_loss", "lower"),
        ("confusion/fp", "fp", "lower"),
        ("confusion@0.3/tp", "tp", None),
    ],
)
def test_metric_base_and_direction(key: str, base: str, direction: str | None) -> None:
    assert metric_base(key) == base and metric_direction(key) == direction


def test_select_metrics_by_name_slice_and_glob() -> None:
    keys = ["accuracy", "accuracy[sex=Male]", "auc", "holdout/auc", "log_loss"]
    assert select_metrics(keys, ["auc"]) == ["auc", "holdout/auc"]
    assert select_metrics(keys, ["accuracy[sex=Male]", "log*"]) == [
        "accuracy[sex=Male]",
        "log_loss",
    ]
    assert select_metrics(keys, None) == keys


@given(
    keys=st.lists(st.text(min_size=1, max_size=12), max_size=6, unique=True),
    blanks=st.lists(st.sampled_from(["", " ", "  ", "\t", "\n"]), min_size=1, max_size=4),
)
def test_a_selection_of_blank_items_selects_every_metric(
    keys: list[str], blanks: list[str]
) -> None:
    """``--metrics " "`` (or ``","``) names nothing, so it narrows nothing: every metric
    shows. Before, it selected none, and history showed runs without metrics, silently."""
    assert select_metrics(keys, blanks) == keys
    assert select_metrics(keys, [*blanks, *keys[:1]]) == select_metrics(keys, keys[:1])


def test_previous_is_the_latest_other_version_and_best_follows_the_direction() -> None:
    earlier = [
        _Run(1, 1, {"auc": 0.80, "log_loss": 0.40}),
        _Run(2, 2, {"auc": 0.85, "log_loss": 0.45}),
        _Run(3, 3, {"auc": 0.82, "log_loss": 0.35}),
        _Run(4, 4, {"auc": 0.81, "log_loss": 0.50}),  # a rerun of the current version
    ]
    changes, previous = compare_metrics({"auc": 0.83, "log_loss": 0.38}, earlier, version=4)
    assert previous.id == 3
    by = {c.name: c for c in changes}
    assert by["auc"].previous == 0.82 and by["auc"].previous_version == 3
    assert math.isclose(by["auc"].delta_previous, 0.01)
    assert (by["auc"].best, by["auc"].best_version) == (0.85, 2) and not by["auc"].is_new_best
    assert (by["log_loss"].best, by["log_loss"].best_version) == (0.35, 3)


def test_a_new_best_is_flagged() -> None:
    (change,), _ = compare_metrics({"log_loss": 0.3}, [_Run(1, 1, {"log_loss": 0.4})], version=2)
    assert change.is_new_best and change.delta_best == pytest.approx(-0.1)


def _dag(l1: float) -> dict[str, Any]:
    node = {"name": "learner", "op": "Linear", "fingerprint": f"fp{l1}", "params": {"l1": l1}}
    return {"nodes": [node]}


def test_history_and_comparison_from_the_metadata_database(tmp_path: Path) -> None:
    md = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        assert history_entries(md, "w") == []
        ids = []
        for l1, auc in ((0.0, 0.80), (0.01, 0.84), (0.0, 0.80)):
            v = md.record_version("w", "cfg.py", _dag(l1), f"d{l1}")
            run = md.start_run("w", v, approx=False, policy="helix", store_url="", params={})
            md.finish_run(run, status="ok", wall_seconds=1.0, metrics={"auc": auc})
            ids.append(run)
        light = md.runs("w", with_nodes=False)
        assert [(r.id, r.metrics, r.nodes) for r in light] == [
            (r.id, r.metrics, ()) for r in md.runs("w")
        ]
        entries = history_entries(md, "w", limit=2)
        assert [e.run.id for e in entries] == [ids[2], ids[1]]
        assert entries[0].changed_from == 2 and entries[0].changes == ("learner.l1 0.01 → 0.0",)
        assert entries[1].changes == ("learner.l1 0.0 → 0.01",)
        comparison = compare_with_history(
            md, "w", version=1, run_id=ids[2], approx=False, metrics={"auc": 0.80}, dag=_dag(0.0)
        )
        assert comparison.previous_version == 2
        (auc,) = comparison.metrics
        assert (auc.best, auc.best_version, auc.best_run) == (0.84, 2, ids[1])
    finally:
        md.close()


def test_version_diff_defaults_to_the_latest_against_its_parent(tmp_path: Path) -> None:
    md = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        with pytest.raises(StoreError, match="no recorded versions yet; run it first"):
            version_diff(md, "w")
        md.record_version("w", "cfg.py", _dag(0.0), "d0")
        with pytest.raises(StoreError, match="is its first"):
            version_diff(md, "w")
        md.record_version("w", "cfg.py", _dag(0.01), "d1")
        md.record_version("w", "cfg.py", _dag(0.02), "d2")
        found = version_diff(md, "w")
        assert (found.old.number, found.new.number) == (2, 3)
        (change,) = found.differences
        assert (change.name, change.change, change.details) == (
            "learner",
            "changed",
            ("learner.l1 0.01 → 0.02",),
        )
        assert version_diff(md, "w", 1).to_dict()["old"] == 1
        assert version_diff(md, "w", 1, 2).to_dict() == {
            "old": 1,
            "new": 2,
            "changes": [
                {"name": "learner", "change": "changed", "details": ["learner.l1 0.0 → 0.01"]}
            ],
        }
        assert workflow_changes(found.old.dag, found.new.dag) == ("learner.l1 0.01 → 0.02",)
        with pytest.raises(StoreError, match="has no version 9"):
            version_diff(md, "w", 9)
    finally:
        md.close()


def test_recorded_runs_leave_tagged_runs_out_unless_asked(tmp_path: Path) -> None:
    md = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        v = md.record_version("w", "cfg.py", _dag(0.0), "d0")
        ids = []
        for params in ({}, {TAG_KEY: "agent"}, {"epochs": 2}):
            run = md.start_run("w", v, approx=False, policy="helix", store_url="", params=params)
            md.finish_run(run, status="ok", wall_seconds=1.0, metrics={"auc": 0.8})
            ids.append(run)
        mine = recorded_runs(md, "w")
        assert [r.id for r in mine] == [ids[2], ids[0]]
        assert [tag_of(r) for r in recorded_runs(md, "w", agent=True)] == [None, "agent", None]
        assert [r.id for r in recorded_runs(md, "w", limit=1)] == [ids[2]]
        assert [r.id for e in history_entries(md, "w") for r in [e.run]] == [ids[2], ids[0]]
        assert len(history_entries(md, "w", agent=True)) == 3
    finally:
        md.close()
