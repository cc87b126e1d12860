"""The background writer of in-process preprocessing (helix_tf.engine._writer).

Its tables are written beside the computation; the run waits for every one before it
commits anything, a failed write fails the run named by its node and leaves nothing
stored, and what later runs reuse equals a fresh run's results.
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from helix_tf.engine import tables
from helix_tf.engine._writer import BackgroundWriteError, BackgroundWrites
from helix_tf.errors import ExecutionError
from helix_tf.reuse.store import ArtifactStore
from helix_tf.types import LABEL


def _inc(counter: collections.Counter[str]):  # type: ignore[no-untyped-def]
    return lambda name, value: counter.update({name: value})


def _table(n: int) -> pa.Table:
    return pa.table({"__row": pa.array(range(n), pa.int64()), "value": pa.array([1.0] * n)})


def test_background_writes_count_as_writes_in_line(tmp_path: Path) -> None:
    """The same files and bytes as writes made in line; the wait is counted apart."""
    in_line = tables.write_batch(str(tmp_path / "now"), "train", 0, _table(100))
    later: collections.Counter[str] = collections.Counter()
    with BackgroundWrites(_inc(later)) as writer:
        for k in range(3):
            root = str(tmp_path / "later")
            writer.submit(
                "a", lambda k=k, root=root: tables.write_batch(root, "train", k, _table(100))
            )
    assert later["bytes/a"] == 3 * in_line > 0
    assert "write_micros/a" in later and "write_wait_micros/a" in later
    for k in range(3):
        assert tables.read_batch(str(tmp_path / "later"), "train", k).equals(_table(100))


def test_wait_for_one_node_leaves_the_others_pending() -> None:
    counted: collections.Counter[str] = collections.Counter()
    release = threading.Event()
    with BackgroundWrites(_inc(counted)) as writer:
        writer.submit("source", lambda: 10)
        writer.submit("feature", lambda: (release.wait(5), 20)[1])
        writer.wait("source")
        assert counted["bytes/source"] == 10 and "bytes/feature" not in counted
        release.set()
    assert counted["bytes/feature"] == 20


def test_a_failed_write_names_its_node_and_drops_what_is_queued() -> None:
    ran: list[str] = []
    gate = threading.Event()

    def broken() -> int:
        gate.wait(5)
        raise ValueError("the encoder broke")

    writer = BackgroundWrites(lambda k, v: None)
    writer.submit("examples", broken)
    writer.submit("later", lambda: ran.append("later") or 1)
    gate.set()
    with pytest.raises(BackgroundWriteError, match="the encoder broke") as caught:
        writer.wait()
    assert caught.value.node == "examples"
    assert isinstance(caught.value.__cause__, ValueError)
    assert ran == []  # queued behind the failure: never written
    writer.wait()  # nothing is left pending


def test_waiting_for_a_node_queued_behind_a_failure_names_the_failed_node() -> None:
    writer = BackgroundWrites(lambda k, v: None)
    writer.submit("rows", lambda: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    writer.submit("examples", lambda: 1)
    with pytest.raises(BackgroundWriteError, match="No space left") as caught:
        writer.wait("examples")
    assert caught.value.node == "rows"


def test_leaving_on_an_error_waits_for_the_write_in_progress() -> None:
    """An error of the computation: the write under way finishes before it propagates
    (nothing writes into a staging folder the run then aborts)."""
    finished: list[bool] = []
    started = threading.Event()

    def slow() -> int:
        started.set()
        threading.Event().wait(0.2)
        finished.append(True)
        return 1

    with (
        pytest.raises(RuntimeError, match="compute failed"),
        BackgroundWrites(lambda k, v: None) as w,
    ):
        w.submit("a", slow)
        started.wait(5)
        raise RuntimeError("compute failed")
    assert finished == [True]


@pytest.mark.slow
@pytest.mark.ci
def test_a_failed_background_write_fails_the_run_and_stores_nothing(
    tiny_census_config: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helix_tf import api

    written = tables.write_batch

    def write_batch(root: str, split: str, k: int, table: pa.Table, **kw: object) -> int:
        if LABEL in table.column_names:  # the examples' tables
            raise ValueError("the encoder broke")
        return written(root, split, k, table, **kw)

    monkeypatch.setattr(tables, "write_batch", write_batch)
    with pytest.raises(ExecutionError, match="the encoder broke") as caught:
        api.run(tiny_census_config, store=store)
    assert caught.value.node == "examples"
    artifacts = ArtifactStore(store)
    assert list(artifacts.entries()) == []  # no node recorded as stored
    report = artifacts.verify()
    assert report.clean, (report.bad, report.leftovers.paths)
    assert not list(Path(store, "staging").iterdir())


@pytest.mark.slow
def test_reusing_background_written_results_equals_a_fresh_run(
    tiny_census_config: Path, tmp_path: Path
) -> None:
    """Features and examples written in the background, loaded by a learner edit: the
    same predictions and metrics as the edited workflow run from scratch."""
    from helix_tf import api

    reused_store, fresh_store = str(tmp_path / "reused"), str(tmp_path / "fresh")
    api.run(tiny_census_config, store=reused_store, materialize="all")
    reused = api.run(tiny_census_config, store=reused_store, params=["epochs=2"])
    states = {n.name: n.state for n in reused.nodes}
    assert states["examples"] == "load"  # written in the background by the first run
    fresh = api.run(tiny_census_config, store=fresh_store, params=["epochs=2"])
    assert reused.metrics == fresh.metrics
    assert reused.predictions().equals(fresh.predictions())
