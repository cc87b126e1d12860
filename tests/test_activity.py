"""The user-run mark: held by a run's process, seen by others, dropped when it dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from helix_tf.activity import (
    home_of,
    user_run,
    user_run_active,
    user_run_probe,
    user_run_started,
)

HOLD = (
    "import sys, time; from helix_tf.activity import user_run\n"
    "with user_run(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n"
)


def _wait_active(home: Path, want: bool) -> None:
    deadline = time.monotonic() + 120
    while user_run_active(home) != want:
        assert time.monotonic() < deadline, f"still active={not want}"
        time.sleep(0.01)


def test_mark_is_seen_from_another_process_and_dropped_on_sigkill(tmp_path: Path) -> None:
    assert not user_run_active(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
        assert user_run_active(tmp_path)
        started = user_run_started(tmp_path)
        assert started is not None and abs(time.time() - started) < 30
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _wait_active(tmp_path, False)


def test_mark_is_released_after_the_block(tmp_path: Path) -> None:
    probe = user_run_probe(tmp_path)  # made before the lock file exists
    assert not probe()
    with user_run(tmp_path):
        assert user_run_active(tmp_path)  # a second descriptor: another open file
        assert probe()
    assert not user_run_active(tmp_path) and not probe()


def test_home_is_the_local_store_or_helix_beside_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "c.py"
    assert home_of(cfg) == tmp_path / ".helix"
    assert home_of(cfg, str(tmp_path / "s")) == tmp_path / "s"
    assert home_of(cfg, "gs://bucket/x") == tmp_path / ".helix"


def test_a_missing_store_folder_is_not_created(tmp_path: Path) -> None:
    home = tmp_path / "no-store-yet"
    with user_run(home):
        assert not user_run_active(home)
    assert not home.exists()


def test_a_run_from_python_holds_the_mark_and_an_agent_run_does_not(
    tiny_census_config: Path, store: str
) -> None:
    """A user's ``helix_tf.run`` (a notebook's) is a user run the agent yields to, as a
    ``helix-tf run`` is (QA pass 11: only the CLI took the mark, so the agent's trials went
    on beside a notebook's runs); the agent's own tagged runs never hold it."""
    import helix_tf

    helix_tf.run(tiny_census_config, store=store)  # the store's folder exists from here
    seen: dict[str | None, set[bool]] = {}
    for tag in (None, "agent"):
        seen[tag] = set()
        helix_tf.run(
            tiny_census_config,
            store=store,
            params={"learner.learning_rate": 0.07 if tag else 0.06},
            tag=tag,
            progress=lambda event, tag=tag: seen[tag].add(user_run_active(store)),
        )
    assert seen == {None: {True}, "agent": {False}}
    assert not user_run_active(store)
