"""The machine's running agents: cores each pins itself to, and what a SIGKILL leaves."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from helix_tf.agent import _daemon, _registry
from helix_tf.agent._study import AgentPaths
from helix_tf.agent.commands import agent


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "registry"
    monkeypatch.setenv(_registry.ENV, str(folder))
    return folder


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A process that is no agent (say, one that got a killed agent's pid)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_two_agents_with_one_core_each_pin_different_cores(
    registry: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stranger: subprocess.Popen[bytes],
) -> None:
    """Both took the last core (seed 2's quality run shared it with another agent)."""
    pinned: list[list[int]] = []
    monkeypatch.setattr(os, "nice", lambda n: 19)
    monkeypatch.setattr(os, "system", lambda cmd: 0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: pinned.append(sorted(cpus)))
    first, second = stranger.pid, os.getpid()  # two live processes, as two agents
    assert _daemon._lower_priority(first, 1, tmp_path / "a") == [2]
    assert _daemon._lower_priority(second, 1, tmp_path / "b") == [1]
    assert pinned == [[2], [1]]
    # With every core taken, the least shared: a third agent on 2 cores gets 0 and 2.
    assert _registry.claim_cpus(99999999, tmp_path / "c", [0, 1, 2], 2) == [0, 2]
    assert sorted(_registry.running_homes()) == [tmp_path / "a", tmp_path / "b"]


def test_a_killed_agents_entry_and_status_are_cleaned_and_its_pid_never_signalled(
    registry: Path, tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    """After a SIGKILL the status said "running" and the registry kept the pid; once
    the pid was another process's, ``agent stop`` sent that process SIGTERM."""
    home = tmp_path / "store"
    paths = AgentPaths(home=home)
    # The killed agent's leftovers, its pid now the stranger's (started at another time).
    start = _registry.process_start(stranger.pid)
    gone = None if start is None else start - 1
    paths.write_status({"pid": stranger.pid, "pid_start": gone, "state": "running"})
    registry.mkdir()
    entry = {"pid": stranger.pid, "home": str(home), "start": gone, "cpus": [1]}
    (registry / f"{stranger.pid}.json").write_text(json.dumps(entry))
    if gone is None:
        pytest.skip("process start times are not readable here (/proc)")

    config = str(tmp_path / "c.py")
    for args in (["stop"], ["stop", config, "--store", str(home)]):
        out = CliRunner().invoke(agent, args)
        assert out.exit_code == 0, out.output
        assert "no agent is running" in out.output
        assert stranger.poll() is None  # not signalled
    assert not list(registry.glob("*.json"))  # the entry is gone
    status = paths.read_status()
    assert status is not None and status["state"] == "dead"
    assert f"pid {stranger.pid}" in status["reason"]
    out = CliRunner().invoke(agent, ["status", "--json", config, "--store", str(home)])
    assert [(s["state"], s["running"]) for s in json.loads(out.output)] == [("dead", False)]


def test_an_unreadable_status_file_is_said_and_the_running_agent_still_stopped(
    registry: Path, tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    """A damaged status.json read as "no agent is running", and stop left the agent on."""
    paths = AgentPaths(home=tmp_path / "store")
    paths.folder.mkdir(parents=True)
    paths.status.write_text('{"state": "runn')  # cut short
    config = str(tmp_path / "cfg.py")  # not read: the status file is all it shows
    where = [config, "--store", str(paths.home)]

    shown = CliRunner().invoke(agent, ["status", *where, "--json"])
    (st,) = json.loads(shown.stdout)
    assert st["state"] == "unknown" and not st["running"]
    assert "cannot be read" in st["reason"] and "move the file aside" in st["reason"]

    _registry.register(stranger.pid, paths.home)  # the agent of this store runs
    line = CliRunner().invoke(agent, ["status", *where]).stdout
    assert f"its process (pid {stranger.pid}) runs" in line and "no agent is running" not in line
    stopped = CliRunner().invoke(agent, ["stop", *where])
    assert f"agent stopped (pid {stranger.pid})" in stopped.stdout
    assert stranger.wait(timeout=10) != 0


def test_status_and_stop_of_a_config_that_is_no_file_say_so(tmp_path: Path) -> None:
    """``agent status cnfg.py`` (a typo) answered "no agent is running", as if all were well."""
    typo = str(tmp_path / "cnfg.py")
    for command in ("status", "stop"):
        out = CliRunner().invoke(agent, [command, typo])
        assert out.exit_code == 0, out.output
        assert f"no agent is running for {typo} (there is no file {typo}" in out.output
