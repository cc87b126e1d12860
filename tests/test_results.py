"""One per-node result: the engine makes it, a run carries it, the history records it."""

from __future__ import annotations

import dataclasses

import pytest

from helix_tf.results import NodeResult
from helix_tf.reuse.metadata import NodeRecord


def _result(state: str, *, materialized: bool) -> NodeResult:
    return NodeResult(
        name="examples",
        kind="preprocess",
        state=state,
        seconds=3.5,
        rows=10,
        bytes=2048,
        materialized=materialized,
        reason="because",
        fingerprint="abc",
        compute_seconds=2.0,
        load_seconds=0.5,
        write_seconds=0.75,
        read_seconds=0.25,
        other_seconds=0.25,
        meta={"zero": {"noise": 3}},
    )


@pytest.mark.parametrize(
    ("state", "materialized", "written"),
    [("compute", True, True), ("compute", False, False), ("load", True, False)],
)
def test_the_record_is_made_from_the_result_and_says_whether_the_run_wrote_it(
    state: str, materialized: bool, written: bool
) -> None:
    result = _result(state, materialized=materialized)
    record = NodeRecord.from_result(result)
    shared = {f.name for f in dataclasses.fields(NodeRecord)} - {"materialized"}
    assert {k: getattr(record, k) for k in shared} == {k: getattr(result, k) for k in shared}
    assert record.materialized is written is result.written


def test_the_json_form_of_a_node_result_is_unchanged() -> None:
    assert list(_result("compute", materialized=True).to_dict()) == [
        "name",
        "kind",
        "state",
        "seconds",
        "compute_seconds",
        "load_seconds",
        "write_seconds",
        "write_wait_seconds",
        "read_seconds",
        "rows",
        "bytes",
        "materialized",
        "reason",
        "fingerprint",
    ]
