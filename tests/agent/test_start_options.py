"""`helix-tf agent start`'s numbers (QA 27): each refused before an agent starts, naming
its option, where before `--cores 0` said "agent started (0 core(s))", `--trials 0` and
`--resume-after nan` started an agent, and a start that gave up waiting left the agent
running while `agent stop` found none."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helix_tf.agent._options import AgentOptions
from helix_tf.agent._study import AgentPaths
from helix_tf.agent.commands import agent
from tests.conftest import TINY_CENSUS


@pytest.fixture
def cfg(make_config: Callable[..., Path], census_like: tuple[Path, Path]) -> Path:
    train, test = census_like
    return make_config(TINY_CENSUS, train=train, test=test)


@pytest.mark.parametrize(
    ("option", "named"),
    [
        (["--cores", "0"], "--cores"),
        (["--cores", "4096"], "--cores 4096: this process may run on"),
        (["--trials", "0"], "--trials"),
        (["--resume-after", "-1"], "--resume-after"),
        (["--resume-after", "nan"], "--resume-after must be a number of seconds"),
        (["--verify-min-gain", "nan"], "--verify-min-gain must be >= 0"),
        (["--wait", "0"], "--wait"),
        (["--wait", "nan"], "--wait must be a number"),
    ],
)
def test_a_bad_number_is_refused_naming_its_option_and_nothing_starts(
    cfg: Path, option: list[str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))
    done = CliRunner().invoke(agent, ["start", str(cfg), *option])
    assert done.exit_code == 2 and named in done.output, done.output
    assert started == [] and AgentPaths.of(cfg).read_status() is None


@pytest.mark.parametrize(
    "change",
    [
        {"cores": 0},
        {"cores": True},
        {"max_trials": 0},
        {"resume_after": math.nan},
        {"resume_after": -0.5},
        {"verify_min_gain": math.nan},
    ],
)
def test_agent_options_refuse_what_the_agent_cannot_run_with(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(change)).replace("max_", "")):
        AgentOptions(config="c.py", **change)


def test_a_start_that_gives_up_waiting_stops_the_agent_it_started(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    popen = subprocess.Popen

    def recorded(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        procs.append(popen(*args, **kwargs))
        return procs[-1]

    monkeypatch.setattr(subprocess, "Popen", recorded)
    done = CliRunner().invoke(agent, ["start", str(cfg), "--wait", "0.01"])
    assert done.exit_code == 1 and "stopped it" in done.output, done.output
    (proc,) = procs
    assert proc.poll() is not None  # not left running
