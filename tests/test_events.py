"""Typed progress events: each has one JSON form, read back to the same event, and the
CLI's printer renders every one of them."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given, strategies as st
from rich.console import Console

from helix_tf.errors import HelixError
from helix_tf.events import (
    EpochFinished,
    NodeFinished,
    Planned,
    PreprocessingStarted,
    ProgressEvent,
    RetrainingStarted,
    SampleMoved,
    TrainingStarted,
    event_from_dict,
)
from helix_tf.rendering import ProgressPrinter
from helix_tf.results import NodeDecision

_names = st.text(alphabet="abcdefgh_", min_size=1, max_size=8)
_secs = st.floats(min_value=0, max_value=1e4, allow_nan=False)
_decisions = st.builds(
    NodeDecision,
    name=_names,
    kind=st.sampled_from(["source", "preprocess", "train"]),
    state=st.sampled_from(["compute", "load", "prune"]),
    compute_cost=_secs,
    load_cost=st.none() | _secs,
    reason=st.text(max_size=20),
    fingerprint=st.text(alphabet="0123456789abcdef", min_size=4, max_size=4),
)
EVENTS = st.one_of(
    st.builds(Planned, decisions=st.lists(_decisions, max_size=4).map(tuple)),
    st.builds(
        PreprocessingStarted,
        nodes=st.lists(_names, max_size=4).map(tuple),
        runner=st.sampled_from(["direct", "in-process", "dataflow"]),
    ),
    st.builds(TrainingStarted, node=_names, rows=st.integers(0, 10**7)),
    st.builds(
        EpochFinished,
        node=_names,
        epoch=st.integers(1, 9),
        epochs=st.integers(1, 9),
        loss=_secs,
        eta=st.none() | _secs,
    ),
    st.builds(
        NodeFinished,
        node=_names,
        state=st.just("compute"),
        seconds=_secs,
        other_seconds=_secs,
        rows=st.none() | st.integers(0, 10**7),
    ),
    st.builds(
        RetrainingStarted,
        drop=st.dictionaries(_names, st.lists(_names, max_size=3).map(tuple), max_size=3),
    ),
    st.builds(SampleMoved, reason=st.text(max_size=40)),
)


@given(EVENTS)
def test_every_event_reads_back_from_its_json_form(event: ProgressEvent) -> None:
    import json

    data = json.loads(json.dumps(event.to_dict()))
    assert event_from_dict(data) == event


@given(EVENTS)
def test_the_printer_renders_every_event_on_one_line(event: ProgressEvent) -> None:
    line = ProgressPrinter.line(event, 1.5)
    assert line is not None and "\n" not in line


@pytest.mark.parametrize(
    ("event", "form"),
    [
        (
            NodeFinished(node="n", state="compute", seconds=1.0, other_seconds=0.5, rows=3),
            {
                "event": "node",
                "node": "n",
                "state": "compute",
                "seconds": 1.0,
                "other_seconds": 0.5,
                "rows": 3,
            },
        ),
        (
            PreprocessingStarted(nodes=("a", "b"), runner="direct"),
            {"event": "stage", "stage": "preprocess", "nodes": ["a", "b"], "runner": "direct"},
        ),
        (
            TrainingStarted(node="learner", rows=10),
            {"event": "stage", "stage": "train", "node": "learner", "rows": 10},
        ),
        (
            EpochFinished(node="l", epoch=1, epochs=2, loss=0.5, eta=1.0),
            {"event": "epoch", "node": "l", "epoch": 1, "epochs": 2, "loss": 0.5, "eta": 1.0},
        ),
        (
            RetrainingStarted(drop={"examples": ("noise",)}),
            {"event": "retrain", "drop": {"examples": ["noise"]}},
        ),
        (
            SampleMoved(reason="line 9 of test.csv has label 'maybe'"),
            {"event": "sample_moved", "reason": "line 9 of test.csv has label 'maybe'"},
        ),
    ],
)
def test_the_json_form_is_the_one_the_engine_always_reported(
    event: ProgressEvent, form: dict[str, Any]
) -> None:
    assert event.to_dict() == form


def test_an_unknown_event_is_refused_with_the_known_ones() -> None:
    with pytest.raises(HelixError, match=r"unknown progress event.*known events are: .*node"):
        event_from_dict({"event": "nodes"})


def test_the_printer_prints_the_lines_the_cli_always_printed() -> None:
    buf = io.StringIO()
    printer = ProgressPrinter(Console(file=buf, width=200), True)
    decision = NodeDecision(
        name="a",
        kind="source",
        state="load",
        compute_cost=1.0,
        load_cost=0.1,
        reason="",
        fingerprint="f",
    )
    printer(Planned(decisions=(decision,)))
    printer(NodeFinished(node="learner", state="compute", seconds=2.0, other_seconds=1.0, rows=5))
    printer(PreprocessingStarted(nodes=("a",), runner="in-process"))
    lines = buf.getvalue().splitlines()
    assert lines[0] == "plan: 0 compute, 1 load, 0 prune"
    assert lines[1].endswith("learner: compute 2.00s (incl. 1.00s importing TensorFlow), 5 rows")
    assert lines[2].endswith("preprocessing 1 node(s) in this process (no Beam pipeline) …")
    silent = io.StringIO()
    ProgressPrinter(Console(file=silent), False)(Planned(decisions=()))
    assert silent.getvalue() == ""
