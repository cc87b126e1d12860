"""Waiting for a colleague's computation in flight (helix_tf._inflight), on a fake clock."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from helix_tf._inflight import MAX_WAIT, WAIT_ENV, await_colleagues, wait_bound
from helix_tf.errors import ConfigError
from helix_tf.reuse.store import ArtifactStore
from helix_tf.roles import NodeState

FINGERPRINTS = {"examples": "fp-examples", "learner": "fp-learner"}
COLLEAGUE = "cd" * 8


class FakeClock:
    """A monotonic clock that moves only when the waiter sleeps; ``on_sleep`` runs then."""

    def __init__(self, on_sleep: Callable[[int], None] = lambda n: None) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        self.on_sleep(self.sleeps)


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv(WAIT_ENV, raising=False)
    store = ArtifactStore(str(tmp_path / "store"))
    compiled = SimpleNamespace(node=lambda name: SimpleNamespace(fingerprint=FINGERPRINTS[name]))
    with store.open_lease([]):
        yield SimpleNamespace(store=store, compiled=compiled)


def compute(*names: str) -> list[Any]:
    return [SimpleNamespace(name=n, state=NodeState.COMPUTE) for n in names]


def colleague(session: Any, computing: list[str], *, announced: float | None = None) -> Path:
    """A live colleague's lease on another machine that announced before this run."""
    mine = session.store.lease.announced or time.time()
    body = {
        "id": COLLEAGUE,
        "host": "elsewhere",
        "user": "zoe",
        "pid": 4321,
        "proc_start": None,
        "pid_scope": None,
        "created": time.time(),
        "renewed": time.time(),
        "pins": [],
        "scratch": None,
        "run": {},
        "computing": computing,
        "announced": mine - 5 if announced is None else announced,
    }
    path = Path(session.store.root, "runs", f"{COLLEAGUE}.json")
    path.write_text(json.dumps(body))
    return path


def store_entry(store: ArtifactStore, fingerprint: str) -> None:
    staging = store.begin(fingerprint)
    Path(staging.url, "part.bin").write_bytes(b"computed by the colleague")
    assert store.commit(staging, kind="table") is not None


def test_loads_what_the_colleague_stores_and_computes_the_rest(
    session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    session.store.lease.announce([])  # this run's place: after the colleague's
    colleague(session, ["fp-examples"])

    def colleague_works(n: int) -> None:
        if n == 3:
            store_entry(session.store, "fp-examples")

    clock = FakeClock(colleague_works)
    with caplog.at_level(logging.WARNING, logger="helix_tf"):
        stored = await_colleagues(
            session, compute("examples", "learner"), {}, clock=clock, sleep=clock.sleep
        )
    assert stored == ["examples"] and clock.sleeps == 3
    assert session.store.lease.computing == {"fp-examples", "fp-learner"}
    assert "zoe@elsewhere" in caplog.text and "loading it" in caplog.text
    # The same person's other terminal is no colleague (QA pass 26: "a colleague's run").
    assert "another run stored examples meanwhile: loading it" in caplog.text


def test_a_colleague_that_ends_without_storing_is_not_waited_for(
    session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    session.store.lease.announce([])
    lease = colleague(session, ["fp-examples"])
    clock = FakeClock(lambda n: lease.unlink() if n == 2 else None)
    with caplog.at_level(logging.WARNING, logger="helix_tf"):
        stored = await_colleagues(session, compute("examples"), {}, clock=clock, sleep=clock.sleep)
    assert stored == [] and clock.sleeps == 2
    assert "ended without storing examples" in caplog.text


def test_the_wait_is_bounded_by_the_measured_compute_time(
    session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    session.store.lease.announce([])
    colleague(session, ["fp-examples", "fp-learner"])
    history = {n: SimpleNamespace(compute_seconds=5.0) for n in ("examples", "learner")}
    clock = FakeClock()
    with caplog.at_level(logging.WARNING, logger="helix_tf"):
        stored = await_colleagues(
            session, compute("examples", "learner"), history, clock=clock, sleep=clock.sleep
        )
    assert stored == [] and clock.now == pytest.approx(2 * 10 + 30)
    assert "stopped waiting after 50s" in caplog.text and "still waiting" in caplog.text


def test_the_first_announcer_never_waits(session: Any) -> None:
    colleague(session, ["fp-examples"], announced=time.time() + 60)  # announced later
    clock = FakeClock()
    assert await_colleagues(session, compute("examples"), {}, clock=clock, sleep=clock.sleep) == []
    assert clock.sleeps == 0
    assert session.store.lease.computing == {"fp-examples"}  # announced all the same


def test_zero_turns_waiting_off_and_a_bad_value_is_named(
    session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session.store.lease.announce([])
    colleague(session, ["fp-examples"])
    clock = FakeClock()
    monkeypatch.setenv(WAIT_ENV, "0")
    assert await_colleagues(session, compute("examples"), {}, clock=clock, sleep=clock.sleep) == []
    assert clock.sleeps == 0
    monkeypatch.setenv(WAIT_ENV, "soon")
    with pytest.raises(ConfigError, match=f"{WAIT_ENV} must be a number of seconds >= 0"):
        await_colleagues(session, compute("examples"), {}, clock=clock, sleep=clock.sleep)


def test_wait_bound() -> None:
    measured = {
        "a": SimpleNamespace(compute_seconds=10.0),
        "b": SimpleNamespace(compute_seconds=1.0),
    }
    assert wait_bound(["a", "b"], measured, MAX_WAIT) == 52.0
    assert wait_bound(["a", "c"], measured, MAX_WAIT) == MAX_WAIT  # c never measured
    assert wait_bound(["a"], measured, 20.0) == 20.0


def test_a_store_that_cannot_be_read_means_computing_not_failing(
    session: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unreadable(fingerprints: Any) -> Any:
        raise OSError("the bucket is unreachable")

    monkeypatch.setattr(session.store, "in_flight", unreadable)
    clock = FakeClock()
    with caplog.at_level(logging.WARNING, logger="helix_tf"):
        assert (
            await_colleagues(session, compute("examples"), {}, clock=clock, sleep=clock.sleep) == []
        )
    assert "bucket is unreachable" in caplog.text and "computing here" in caplog.text


def test_a_stopped_run_of_this_machine_is_not_waited_for(
    session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """QA pass 26: a run stopped with Ctrl-Z in one terminal made a run in another wait
    the whole bound (600 s on a store without history) for what it computes."""
    import signal
    import subprocess

    from helix_tf.identity import current_host, process_start
    from helix_tf.reuse.store import pid_scope

    session.store.lease.announce([])
    stopped = subprocess.Popen(["sleep", "60"])
    try:
        stopped.send_signal(signal.SIGSTOP)
        path = colleague(session, ["fp-examples"])
        body = json.loads(path.read_text())
        body.update(
            host=current_host(),
            pid=stopped.pid,
            proc_start=process_start(stopped.pid),
            pid_scope=pid_scope(),
        )
        path.write_text(json.dumps(body))
        clock = FakeClock()
        with caplog.at_level(logging.WARNING, logger="helix_tf"):
            stored = await_colleagues(
                session, compute("examples"), {}, clock=clock, sleep=clock.sleep
            )
        assert stored == [] and clock.sleeps == 0
        assert f"(pid {stopped.pid}) is stopped (Ctrl-Z; `fg` resumes it)" in caplog.text
        assert "computing examples here" in caplog.text
        stopped.send_signal(signal.SIGCONT)
        caplog.clear()
        clock = FakeClock(lambda n: store_entry(session.store, "fp-examples") if n == 2 else None)
        with caplog.at_level(logging.WARNING, logger="helix_tf"):
            stored = await_colleagues(
                session, compute("examples"), {}, clock=clock, sleep=clock.sleep
            )
        assert stored == ["examples"]  # running again: waited for
        assert f"{WAIT_ENV}=0: never wait" in caplog.text
    finally:
        stopped.kill()
        stopped.wait()
