"""The trial worker: one long-lived process for many runs, killed at once on a user's run."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from helix_tf.activity import user_run
from helix_tf.agent._worker import Finished, Stopped, Worker, Yielded

#: Module state a run leaves behind in its process (what a learner's caches are).
_SEEN: list[Any] = []


def _handler(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("crash"):
        os._exit(3)
    if request.get("raise"):
        raise ValueError("a failing trial")
    time.sleep(request.get("sleep", 0.0))
    _SEEN.append(request["n"])
    return {"pid": os.getpid(), "seen": list(_SEEN)}


def _never() -> bool:
    return False


@pytest.fixture
def worker(tmp_path: Path) -> Any:
    w = Worker(_handler, home=tmp_path)
    yield w
    w.kill()


def test_runs_share_one_process_and_what_it_keeps(worker: Worker) -> None:
    """Every trial in its own process would pay the imports and rebuild every cache."""
    outs = [worker.call({"n": n}, stop=_never) for n in range(3)]
    assert all(isinstance(o, Finished) and o.error is None for o in outs)
    pids = {o.result["pid"] for o in outs}  # type: ignore[union-attr,index]
    assert pids == {worker.pid} and worker.pid != os.getpid()
    assert outs[-1].result["seen"] == [0, 1, 2]  # type: ignore[union-attr,index]
    assert worker.stats()["starts"] == 1 and worker.stats()["runs"] == 3


def test_a_user_run_kills_the_worker_and_the_next_run_starts_a_fresh_one(
    worker: Worker, tmp_path: Path
) -> None:
    first = worker.call({"n": 0}, stop=_never)
    assert isinstance(first, Finished)
    old = worker.pid
    release = threading.Event()

    def user() -> None:
        time.sleep(0.3)
        with user_run(tmp_path):
            release.wait(10)

    thread = threading.Thread(target=user, daemon=True)
    thread.start()
    t0 = time.monotonic()
    # The trial would take 300 s: it was killed, not waited for. (The bounds are that
    # distinction, not a speed: the kill takes milliseconds, but a busy machine may
    # take seconds to schedule the agent and the dying worker.)
    out = worker.call({"n": 1, "sleep": 300}, stop=_never)
    assert isinstance(out, Yielded) and time.monotonic() - t0 < 120
    assert out.latency is not None and out.latency < 120
    assert worker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(old, 0)  # type: ignore[arg-type]
    release.set()
    thread.join(60)  # the user's run has ended (it held the mark until now)
    assert not thread.is_alive()
    again = worker.call({"n": 2}, stop=_never)
    assert isinstance(again, Finished) and again.result["pid"] != old  # type: ignore[index]
    assert worker.stats()["starts"] == 2


def test_stop_crash_and_error(worker: Worker) -> None:
    t0 = time.monotonic()
    out = worker.call({"n": 0, "sleep": 30}, stop=lambda: time.monotonic() - t0 > 0.2)
    assert isinstance(out, Stopped) and worker.pid is None
    crashed = worker.call({"crash": True}, stop=_never)
    assert isinstance(crashed, Finished) and crashed.result is None
    assert "status 3" in (crashed.error or "") and worker.pid is None
    failed = worker.call({"raise": True}, stop=_never)
    assert isinstance(failed, Finished) and "ValueError: a failing trial" in (failed.error or "")
    assert worker.pid is not None  # an error in a run does not end the worker
    ok = worker.call({"n": 5}, stop=_never)
    assert isinstance(ok, Finished) and ok.result["seen"] == [5]  # type: ignore[index]


def test_a_worker_past_its_memory_limit_is_replaced_between_runs(tmp_path: Path) -> None:
    w = Worker(_handler, home=tmp_path, max_rss=1)
    try:
        a = w.call({"n": 0}, stop=_never)
        assert isinstance(a, Finished) and w.pid is None  # closed after the run
        b = w.call({"n": 1}, stop=_never)
        assert isinstance(b, Finished) and b.result["pid"] != a.result["pid"]  # type: ignore[index]
    finally:
        w.kill()


def test_close_ends_the_worker_gracefully(worker: Worker) -> None:
    worker.call({"n": 0}, stop=_never)
    pid = worker.pid
    worker.close()
    assert worker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.ci
def test_the_agents_runs_share_one_worker(tiny_census_config: Path, tmp_path: Path) -> None:
    """Real runs through the public API: one worker process serves trial after trial."""
    from helix_tf.agent._options import AgentOptions
    from helix_tf.agent._search import Agent
    from helix_tf.agent._study import AgentPaths

    store = str(tmp_path / "store")
    paths = AgentPaths.of(tiny_census_config, store)
    paths.folder.mkdir(parents=True)
    agent = Agent(AgentOptions(config=str(tiny_census_config), store=store), paths)
    agent.update = lambda **fields: None  # type: ignore[method-assign]
    try:
        # The learning rate is fed at run time: the second run reuses the first's trainer.
        outs = [agent.run({"learner.learning_rate": lr}, validation=None) for lr in (0.02, 0.03)]
    finally:
        agent.worker.close()
    assert all(isinstance(o, Finished) and o.result for o in outs), outs
    pids = {o.result["worker_pid"] for o in outs}  # type: ignore[union-attr,index]
    assert len(pids) == 1 and os.getpid() not in pids
    assert outs[1].result["states"].get("compute", 0) <= 3  # type: ignore[union-attr,index]
    assert agent.status["worker"]["starts"] == 1 and agent.status["worker"]["runs"] == 2
    assert outs[1].result["trainers"]["reuses"] >= 1  # type: ignore[union-attr,index]


def _mark_started() -> None:
    _SEEN.append("started")


def test_on_start_runs_in_each_new_worker_not_in_the_agent(tmp_path: Path) -> None:
    w = Worker(_handler, home=tmp_path, on_start=_mark_started)
    try:
        out = w.call({"n": 1}, stop=_never)
        assert isinstance(out, Finished) and out.result["seen"] == ["started", 1]  # type: ignore[index]
        assert "started" not in _SEEN
        w.kill()
        again = w.call({"n": 2}, stop=_never)
        assert again.result["seen"] == ["started", 2]  # type: ignore[union-attr,index]
    finally:
        w.kill()


def test_the_agents_worker_keeps_keras_trainers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9's trainers are reused only where a long-lived process asks for it."""
    from helix_tf.agent._trial_run import keep_trainers
    from helix_tf.components.trainers import TRAINERS

    monkeypatch.delenv("HELIX_TF_TRAINERS", raising=False)
    monkeypatch.setattr(TRAINERS, "_capacity", None)
    assert TRAINERS.capacity == 0
    keep_trainers()
    assert TRAINERS.capacity == 4
