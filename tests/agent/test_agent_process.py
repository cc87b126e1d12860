"""The agent as the user meets it: real processes on a few hundred census rows.

- search with the test file gone (no search trial reads the test split), then
  verification, report (text, JSON, HTML) and the apply round trip;
- start / status / a user run during a trial (yield, resume) / kill -9 and
  restart (the killed trial is failed and queued again) / stop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helix_tf import history
from helix_tf.agent._study import AgentPaths, open_study, study_name
from helix_tf.identity import process_alive
from helix_tf.search import declared_space
from helix_tf.validation import Validation
from tests.conftest import TINY_CENSUS

pytestmark = pytest.mark.slow

#: The user's version learns almost nothing (learning rate 1e-5): the other choice
#: beats it on validation, so it is verified.
DECLARED = TINY_CENSUS.replace(
    'PARAMS = {"epochs": 1}',
    "from helix_tf import search\n"
    'PARAMS = {"epochs": 1}\n'
    'SEARCH = {"learner.learning_rate": search.Choice(1e-05, 0.1)$extra}',
).replace("learning_rate=0.05", "learning_rate=1e-05")

#: Every evaluation sleeps: a trial lasts long enough for a user run to start inside it.
#: Once per evaluation, not per call: an approximate run's bootstrap intervals call the
#: metric 200 times more, back to back (the agent may take the approximate rung).
SLOW = DECLARED.replace(
    "metrics.Accuracy(), metrics.AUC())",
    'metrics.Accuracy(), metrics.AUC(), metrics.Custom(name="slow", fn=_slow))',
).replace(
    "def workflow(params):",
    "import time\n\n_LAST = [0.0]\n\n\ndef _slow(y, s, f):\n"
    "    if time.monotonic() - _LAST[0] > 1.0:\n        time.sleep(4)\n"
    "    _LAST[0] = time.monotonic()\n    return 0.0\n\n\n"
    "def workflow(params):",
)


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HELIX_TF_SERVER": "off",
        "HELIX_TF_AGENT_REGISTRY": str(tmp_path / "registry"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def _cli(tmp_path: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    code = "from helix_tf.cli import console_main; console_main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=timeout,
        check=False,
    )


@pytest.fixture(autouse=True)
def _no_agent_left(tmp_path: Path) -> Iterator[None]:
    """A failing test stops the agents it started (they are in its own registry)."""
    yield
    _cli(tmp_path, "agent", "stop", "--wait", "10")


def _agent(tmp_path: Path, cfg: Path, *args: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "helix_tf.agent", str(cfg), "--resume-after", "0", *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]


def _study(cfg: Path) -> Any:
    view = history.describe(cfg, validation=Validation())
    name = study_name(view.name, view.digest, declared_space(cfg))
    return open_study(AgentPaths.of(cfg), name, create=False)


def _wait(what: str, check: Callable[[], Any], timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.ci
def test_search_reads_no_test_split_then_verify_report_apply_round_trip(
    tmp_path: Path, census_cut: tuple[Path, Path]
) -> None:
    train, test = census_cut
    cfg = tmp_path / "cfg.py"
    from tests.conftest import write_config

    write_config(
        tmp_path,
        DECLARED,
        train=train,
        test=test,
        extra=', "hours.standardize": search.Choice(True, False)',
    )
    # 1. Search with the test file gone: every trial must still finish.
    away = tmp_path / "test-away"
    os.rename(test, away)
    try:
        _agent(tmp_path, cfg, "--trials", "2")
    finally:
        os.rename(away, test)
    study = _study(cfg)
    states = [t.state.name for t in study.trials]
    # None failed; one may be pruned at the approximate rung (taken where the planner
    # estimates it cheaper: under load, even on these few rows).
    assert len(states) == 2 and "COMPLETE" in states and "FAIL" not in states, states
    assert set(states) <= {"COMPLETE", "PRUNED"}, states
    runs = history.runs(cfg, agent=True)
    assert runs and all(r.validation and r.tag == "agent" for r in runs)
    assert history.runs(cfg) == []  # the user's history ignores the agent's runs
    # 2. With the test file back the agent verifies what beat the user's version.
    _agent(tmp_path, cfg, "--trials", "4")
    report = json.loads(_cli(tmp_path, "agent", "report", str(cfg), "--json").stdout)
    assert report["metric"] == "auc" and report["proposals"]
    top = report["proposals"][0]
    assert top["overrides"]["learner.learning_rate"] == 0.1
    assert top["test"] is not None and top["difference"]["metric"] == "auc"
    assert top["better"] == (top["difference"]["low"] > 0)
    if top["better"] and len(top["overrides"]) == 2:  # ablated: each change reverted alone
        assert set(top["ablation"]) == set(top["overrides"])
        assert top["ablation"]["learner.learning_rate"]["matters"]
    assert any(
        "learner.learning_rate 1e-05 → 0.1" in d for c in top["changes"] for d in c["details"]
    )
    text = _cli(tmp_path, "agent", "report", str(cfg), "--html", str(tmp_path / "r.html"))
    assert text.returncode == 0 and "#1 [" in text.stdout
    assert "Agent proposals" in (tmp_path / "r.html").read_text()
    printed = _cli(tmp_path, "agent", "apply", str(cfg), "1", "--print")
    assert "-p learner.learning_rate=0.1" in printed.stdout
    # 3. Apply, then run: everything loads, the metrics are the verified ones.
    applied = _cli(tmp_path, "agent", "apply", str(cfg), "1")
    assert applied.returncode == 0, applied.stderr
    assert "+" in applied.stdout and "learning_rate=0.1" in cfg.read_text()
    out = _cli(tmp_path, "run", str(cfg), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert {n["state"] for n in result["nodes"]} <= {"load", "prune"}
    assert result["metrics"] == top["test"]["metrics"]


def test_start_yield_to_a_user_run_kill_restart_stop(
    tmp_path: Path, census_cut: tuple[Path, Path]
) -> None:
    from optuna.trial import TrialState

    from tests.conftest import write_config

    train, test = census_cut
    cfg = write_config(
        tmp_path,
        SLOW,
        train=train,
        test=test,
        extra=', "learner.l2": search.Float(1e-6, 1e-2, log=True)',
    )
    paths = AgentPaths.of(cfg)
    started = _cli(tmp_path, "agent", "start", str(cfg), "--resume-after", "1")
    assert started.returncode == 0 and "agent started" in started.stdout, started.stderr

    def in_trial() -> dict[str, Any] | None:
        st = paths.read_status() or {}
        return st if st.get("state") == "running" and st.get("rung") else None

    first = _wait("a trial in progress", in_trial)
    status = _cli(tmp_path, "agent", "status")  # no config: every registered agent
    assert str(cfg) in status.stdout and "running" in status.stdout, status.stdout
    # A user run while the trial evaluates: the agent yields, then resumes.
    user = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from helix_tf.cli import console_main; console_main()",
            "run",
            str(cfg),
            "-p",
            "learner.l2=0.001",
        ],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait("the agent to pause", lambda: (paths.read_status() or {}).get("state") == "paused")
    assert user.wait(timeout=600) == 0, user.stderr.read() if user.stderr else ""
    st = _wait(
        "a measured yield", lambda: (paths.read_status() or {}).get("yields", {}).get("count")
    )
    latencies = paths.read_status()["yields"]["latencies_ms"]
    # Measured; how long depends on the machine's load (the benchmark reports the p95).
    assert latencies and all(ms >= 0 for ms in latencies), latencies
    _wait("the agent to resume", lambda: in_trial() and in_trial()["trial"] > first["trial"])
    # kill -9 during a trial: the restart fails it and queues its parameters again.
    killed = in_trial() or _wait("a trial in progress", in_trial)
    os.kill(killed["pid"], signal.SIGKILL)
    _wait("the agent to die", lambda: not _alive(killed["pid"]))
    running = [t.number for t in _study(cfg).get_trials(states=(TrialState.RUNNING,))]
    assert running, "the killed agent left no trial running to recover"
    restarted = _cli(tmp_path, "agent", "start", str(cfg), "--resume-after", "1")
    assert restarted.returncode == 0, restarted.stderr
    st = _wait("recovery", lambda: (paths.read_status() or {}).get("orphans_failed"))
    assert st == running
    # The user edits the config: a new study starts from the old one's best trial.
    old = _study(cfg)
    _wait("a finished trial", lambda: old.get_trials(states=(TrialState.COMPLETE,)))
    old_name = paths.read_status()["study"]
    cfg.write_text(cfg.read_text().replace("batch_size=128", "batch_size=64"))
    rebased = _wait(
        "a new study",
        lambda: (
            (paths.read_status() or {}).get("study") != old_name
            and (paths.read_status() or {}).get("rebased")
        ),
    )
    assert rebased and all(r.startswith(old_name + "#") for r in rebased)
    stopped = _cli(tmp_path, "agent", "stop", str(cfg))
    assert "agent stopped" in stopped.stdout
    st = paths.read_status()
    assert not _alive(st["pid"]) and st["state"] == "stopped"
    assert not _study(cfg).get_trials(states=(TrialState.RUNNING,))
    assert _cli(tmp_path, "agent", "status").stdout.strip() == "no agent is running"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (an ended agent not yet reaped by its new parent does not)."""
    return process_alive(pid, None)
