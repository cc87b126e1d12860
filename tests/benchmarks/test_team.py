"""The team benchmark's arithmetic (benchmarks/team.py), without running it."""

from __future__ import annotations

from pathlib import Path

from benchmarks.team import member_orders, summarize


def _node(state: str, fp: str, seconds: float = 0.0, materialized: bool = True) -> dict:
    return {
        "name": fp,
        "state": state,
        "compute_seconds": seconds,
        "fingerprint": fp,
        "materialized": materialized,
    }


def test_a_load_is_served_by_another_member_unless_one_materialized_it_oneself() -> None:
    runs = [
        {"member": "ann", "wall_seconds": 2.0, "nodes": [_node("compute", "a", 1.5)]},
        {
            "member": "bob",
            "wall_seconds": 1.0,
            "nodes": [_node("load", "a"), _node("compute", "b", 2.0, False)],
        },
        {"member": "ann", "wall_seconds": 1.0, "nodes": [_node("load", "a"), _node("prune", "b")]},
    ]
    summary = summarize(runs, makespan=3.0)
    assert summary["compute_seconds"] == 3.5 and summary["process_seconds"] == 4.0
    assert (summary["node_computes"], summary["node_loads"]) == (2, 2)
    assert summary["served_by_another_member"] == 1  # bob's load of ann's "a"
    assert summary["share_served_by_another"] == 0.25


def test_member_orders_rotate_or_lockstep() -> None:
    configs = [Path(f"it{i:02d}.py") for i in range(11)]
    rotated = member_orders(configs, 4, "rotated")
    assert [o[0].name for o in rotated] == ["it00.py", "it03.py", "it06.py", "it08.py"]
    assert all(sorted(o) == configs for o in rotated)
    assert member_orders(configs, 2, "lockstep") == [configs, configs]
