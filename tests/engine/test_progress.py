"""The progress lines and the node table of a run agree on every computed node's time."""

from __future__ import annotations

from pathlib import Path

import pytest

from helix_tf import api
from helix_tf.events import NodeFinished, ProgressEvent
from tests.conftest import TINY_CENSUS, write_config


def test_progress_and_node_table_show_the_same_time_per_node(
    census_like: tuple[Path, Path], tmp_path: Path
) -> None:
    config = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])
    events: list[ProgressEvent] = []
    result = api.run(config, store=str(tmp_path / "store"), progress=events.append)
    shown = {e.node: e.seconds for e in events if isinstance(e, NodeFinished)}
    table = {n.name: n.seconds for n in result.nodes if n.state == "compute"}
    assert shown.keys() == table.keys() and len(table) == 9
    for name, seconds in table.items():
        assert shown[name] == pytest.approx(seconds, abs=1e-6), name
    # The history records the same per-node results the run returned (one type).
    from helix_tf.reuse.metadata import MetadataStore, NodeRecord

    with MetadataStore(f"sqlite:///{tmp_path / 'store' / 'metadata.db'}") as md:
        (recorded,) = md.runs(result.workflow)
    assert list(recorded.nodes) == [NodeRecord.from_result(n) for n in result.nodes]
    assert all(n.reason for n in result.nodes)  # the plan's reason, not the engine's blank
