"""The server reports the user-run mark (helix_tf.activity) of its runs' stores; it counts nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from helix_tf.activity import home_of
from helix_tf.server._daemon import _marked_home, _State

HOLD = (
    "import sys, time; from helix_tf.activity import user_run\n"
    "with user_run(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n"
)


def test_a_served_run_marks_the_store_its_own_parser_names(tmp_path: Path) -> None:
    cwd = str(tmp_path)
    assert _marked_home(["run", "cfg.py"], cwd) == home_of(tmp_path / "cfg.py")
    assert (
        _marked_home(["run", "sub/cfg.py", "--store", "s", "-p", "a=1"], cwd)
        == (tmp_path / "s").resolve()
    )
    assert _marked_home(["run", "cfg.py", "--store", "gs://b/s"], cwd) == home_of(
        tmp_path / "cfg.py", "gs://b/s"
    )
    # Only `run` takes the mark: a served plan or history is no user run.
    assert _marked_home(["plan", "cfg.py"], cwd) is None
    assert _marked_home(["history", "cfg.py"], cwd) is None


def test_status_says_a_user_run_is_in_progress_only_while_the_mark_is_held(
    tmp_path: Path,
) -> None:
    store = tmp_path / "s"
    store.mkdir()
    state = _State({}, 0.0, -1)
    state.children[os.getpid()] = (["run", "cfg.py", "--store", "s"], time.monotonic(), store)
    # A served run that has not taken the mark yet (or never will: a fresh store).
    assert state.status()["user_run_in_progress"] is False
    assert state.status()["in_progress"][0]["user_run"] is False
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(store)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        status = state.status()
        assert status["user_run_in_progress"] is True
        assert status["in_progress"][0]["user_run"] is True
        assert state.user_run_in_progress
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 120
    while state.user_run_in_progress:
        assert time.monotonic() < deadline
        time.sleep(0.01)
