"""A trial the agent kills (a yield, a stop) is recorded as killed, with why, not "running"."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helix_tf import history
from helix_tf.activity import user_run
from helix_tf.agent._options import TAG, AgentOptions
from helix_tf.agent._search import Agent
from helix_tf.agent._study import AgentPaths
from helix_tf.agent._worker import Stopped, Yielded
from tests.conftest import TINY_CENSUS, write_config

#: Its evaluation marks that it started (``$marker``, a file) and never ends by itself: a
#: trial can end only by being killed, however quick the machine (with the tiny config a
#: fast machine trained and evaluated the second trial before the test killed it, and the
#: run was recorded "ok").
BLOCKING = TINY_CENSUS.replace(
    "metrics.Accuracy(), metrics.AUC())",
    'metrics.Accuracy(), metrics.AUC(), metrics.Custom(name="blocks", fn=_blocks))',
).replace(
    "def workflow(params):",
    'import time\n\n\ndef _blocks(y, s, f):\n    open(r"$marker", "a").close()\n'
    "    time.sleep(600)\n    return 0.0\n\n\n"
    "def workflow(params):",
)


def _entries(cfg: Path, store: str) -> list[dict[str, Any]]:
    from helix_tf import api

    session = api.open_session(cfg, store=store)
    try:
        entries = history.history_entries(session.metadata, session.compiled.name, agent=True)
        return [e.to_dict() for e in entries]
    finally:
        session.close()


def _when_mid_run(marker: Path, then: Callable[[], None]) -> threading.Thread:
    """Call ``then()`` once the trial's run is evaluating (recorded as running, mid-run).

    The watching thread only looks for the file the evaluation writes: a thread that
    imports or takes a library's lock while the agent forks its worker can leave that
    lock held in the child, which then hangs (it did, the thread reading the history
    through SQLAlchemy, on a busy machine)."""
    marker.unlink(missing_ok=True)

    def watch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if marker.exists():
                then()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
@pytest.mark.ci
def test_yielded_and_stopped_trials_are_recorded_killed_with_the_reason(
    census_like: tuple[Path, Path], tmp_path: Path
) -> None:
    """Without the record, the database keeps them "running" (shown "killed" only on
    this machine, by their dead process) and history says nothing of why."""
    train, test = census_like
    marker = tmp_path / "evaluating"
    tiny_census_config = write_config(tmp_path, BLOCKING, train=train, test=test, marker=marker)
    store = str(tmp_path / "store")
    paths = AgentPaths.of(tiny_census_config, store)
    paths.folder.mkdir(parents=True)
    agent = Agent(
        AgentOptions(config=str(tiny_census_config), store=store, resume_after=0.0),
        paths,
    )
    agent.update = lambda **fields: None  # type: ignore[method-assign]

    # A user's run starts mid-trial: the trial yields; its run is recorded when resuming.
    release = threading.Event()

    def user_starts() -> None:
        with user_run(paths.home):
            release.wait(30)

    user = threading.Thread(target=user_starts, daemon=True)
    watcher = _when_mid_run(marker, user.start)
    outcome = agent.run({}, validation=None)
    assert isinstance(outcome, Yielded)
    release.set()
    for thread in (watcher, user):  # no thread of the test runs while the agent forks
        thread.join(60)
    assert agent.wait_idle()
    [yielded] = _entries(tiny_census_config, store)
    assert yielded["status"] == "killed" and "yielded to a user's run" in yielded["error"]
    assert yielded["params"][history.TAG_KEY] == TAG

    # `agent stop` mid-trial (SIGTERM sets stop_requested): recorded at once.
    def stop() -> None:
        agent.stop_requested = True

    _when_mid_run(marker, stop)
    outcome = agent.run({"learner.l2": 1e-3}, validation=None)
    assert isinstance(outcome, Stopped)
    stopped = _entries(tiny_census_config, store)[0]
    assert stopped["status"] == "killed" and "agent stop" in stopped["error"]
