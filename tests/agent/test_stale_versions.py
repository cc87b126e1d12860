"""The agent against a config or data that changes under it (QA pass 11).

What the report proposes and what an accepted proposal runs must be the trial the
agent measured: a proposal of a study made on an earlier version names every value
the trial ran with that differs from the config as it is now; a trial whose run
finished after the config changed is not told to the study of the version it did not
run; a config that does not compile when a search (re)starts is waited for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helix_tf import history, search
from helix_tf.agent._options import AgentOptions
from helix_tf.agent._proposals import load_report
from helix_tf.agent._search import Agent
from helix_tf.agent._study import AgentPaths, open_study, study_name
from helix_tf.agent._worker import Finished
from helix_tf.validation import Validation
from tests.conftest import TINY_CENSUS

LITERAL = TINY_CENSUS.replace("epochs=params.epochs", "epochs=1")


@pytest.fixture
def cfg(make_config: Callable[..., Path], census_like: tuple[Path, Path]) -> Path:
    train, test = census_like
    return make_config(LITERAL, train=train, test=test)


def _finished(auc: float) -> Finished:
    result = {"metrics": {"auc": auc, "accuracy": 0.5}, "intervals": {}, "approx": False}
    return Finished(result=result, error=None, seconds=0.0)


def test_a_stale_proposal_names_what_its_trial_ran_with_against_the_config_now(
    cfg: Path,
) -> None:
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution

    view = history.describe(cfg, validation=Validation())
    paths = AgentPaths.of(cfg)
    study = open_study(paths, study_name(view.name, view.digest), create=True)
    dims = {
        "learner.epochs": {"current": 1},
        "learner.learning_rate": {"current": 0.05},
    }
    study.set_user_attr("metric", "auc")
    study.set_user_attr("space", {"declared": True, "dimensions": dims})
    study.add_trial(
        optuna.trial.create_trial(
            params={"learner.epochs": 1, "learner.learning_rate": 0.07},
            distributions={
                "learner.epochs": IntDistribution(1, 5),
                "learner.learning_rate": FloatDistribution(0.001, 0.5),
            },
            value=0.8,
            user_attrs={"rung_exact": {"metrics": {"auc": 0.8}}},
        )
    )
    assert load_report(cfg).proposals[0].overrides == {"learner.learning_rate": 0.07}
    # The user sets epochs=3 in the config: the trial ran with 1.
    cfg.write_text(cfg.read_text().replace("epochs=1,", "epochs=3,"))
    report = load_report(cfg)
    assert report.stale
    (proposal,) = report.proposals
    assert proposal.overrides == {"learner.epochs": 1, "learner.learning_rate": 0.07}
    changed = {c["name"]: c["details"] for c in proposal.changes}
    assert any("epochs 3 → 1" in d for d in changed["learner"])
    # Accepted, it is the trial's variant, and the user is told its metrics will be new.
    from click.testing import CliRunner

    from helix_tf.agent.commands import agent
    from helix_tf.config import load_config

    out = CliRunner().invoke(agent, ["apply", str(cfg), "1"])
    assert out.exit_code == 0, out.output
    assert "earlier version" in out.output
    op = load_config(cfg).workflow.declaration("learner").op
    assert (op.epochs, op.learning_rate) == (1, 0.07)


def _agent(cfg: Path) -> Agent:
    opts = AgentOptions(config=str(cfg), resume_after=0.0, preload=False, batch=2)
    agent = Agent(opts, AgentPaths.of(cfg))
    agent.update = lambda **fields: None  # type: ignore[method-assign]
    agent.exact_plan = lambda overrides: None  # type: ignore[method-assign]
    agent.approx_is_cheaper = lambda *a, **kw: False  # type: ignore[method-assign]
    agent.space = None
    return agent


def _space(monkeypatch: pytest.MonkeyPatch) -> search.SearchSpace:
    """A one-dimension space, also what the search derives for the config."""
    space = search.SearchSpace(
        dimensions={"learner.learning_rate": search.Float(0.01, 0.5)},
        current={"learner.learning_rate": 0.05},
        declared=True,
    )
    monkeypatch.setattr("helix_tf.agent._search.search_space", lambda *a, **kw: space)
    return space


def test_a_trial_finished_after_the_config_changed_is_not_told_to_the_old_study(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optuna.trial import TrialState

    space = _space(monkeypatch)
    agent = _agent(cfg)
    before = history.describe(cfg, validation=Validation())
    calls: list[dict[str, Any]] = []

    def call(request: dict[str, Any], **kwargs: Any) -> Finished:
        calls.append(request)
        if len(calls) == 2:  # the user saves an edit while the first trial runs
            cfg.write_text(cfg.read_text().replace("learning_rate=0.05", "learning_rate=0.06"))
        return _finished(0.6 + 0.01 * len(calls))

    agent.worker.call = call  # type: ignore[method-assign]
    assert agent.search() is True  # a new study for the new version
    # The study is named by the (declared) space the agent searches too.
    old = open_study(agent.paths, study_name(before.name, before.digest, space), create=False)
    assert old is not None
    assert not old.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(calls) == 2  # the batch stopped at the change: nothing more ran for it
    assert old.get_trials(states=(TrialState.WAITING,))  # queued again


def test_a_verification_finished_after_the_config_changed_is_not_recorded(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = _space(monkeypatch)
    agent = _agent(cfg)
    before = history.describe(cfg, validation=Validation())
    study = open_study(agent.paths, study_name(before.name, before.digest), create=True)
    study.enqueue_trial({"learner.learning_rate": 0.2})
    agent.base_digest = before.digest
    agent.space = space
    agent.worker.call = lambda request, **kw: _finished(0.9)  # type: ignore[method-assign]
    agent.trial(study, agent.space, "auc")

    def edited(request: dict[str, Any], **kwargs: Any) -> Finished:
        cfg.write_text(cfg.read_text().replace("learning_rate=0.05", "learning_rate=0.06"))
        return _finished(0.9)

    agent.worker.call = edited  # type: ignore[method-assign]
    agent.verify(study, "auc", 0.5, final=True)
    assert not [k for k in study.user_attrs if k.startswith(("verified:", "baseline_test"))]


def test_a_search_waits_while_the_config_does_not_compile(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = _agent(cfg)
    cfg.write_text(cfg.read_text() + "\ndef half_written(\n")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        agent.stop_requested = len(waits) == 2

    monkeypatch.setattr("helix_tf.agent._search.time.sleep", sleep)
    assert agent.search() is False  # stopped while waiting; it never raised
    assert len(waits) == 2


def test_the_agent_stops_when_its_store_folder_is_deleted_under_it(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted, the store took the agent's study, lock and log with it: the agent went on
    writing trials into deleted files (`agent report`: no study), and its lock no longer
    kept a second agent off the store."""
    import os
    import shutil

    _space(monkeypatch)
    agent = _agent(cfg)
    updates: list[dict[str, Any]] = []
    agent.update = lambda **fields: updates.append(fields)  # type: ignore[method-assign]
    agent.paths.folder.mkdir(parents=True)
    agent.lock_fd = os.open(agent.paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    calls: list[dict[str, Any]] = []

    def call(request: dict[str, Any], **kwargs: Any) -> Finished:
        calls.append(request)
        if len(calls) == 2:  # the user deletes the store while the first trial runs
            shutil.rmtree(agent.paths.home)
        agent.stop_requested = len(calls) >= 6  # (bounded, should it go on)
        return _finished(0.6)

    agent.worker.call = call  # type: ignore[method-assign]
    try:
        assert agent.search() is False
    finally:
        os.close(agent.lock_fd)
    assert len(calls) == 2  # nothing ran after
    assert updates[-1]["state"] == "stopped" and "deleted" in updates[-1]["reason"]


def test_agent_status_says_when_its_study_is_of_an_earlier_version(cfg: Path) -> None:
    """Before: a stopped agent's status showed its best trial as if of the config now,
    after the user had edited it (only ``agent report`` said STALE)."""
    import json

    from click.testing import CliRunner

    from helix_tf.agent.commands import agent

    view = history.describe(cfg, validation=Validation())
    paths = AgentPaths.of(cfg)
    paths.folder.mkdir(parents=True, exist_ok=True)
    paths.write_status(
        {
            "pid": 1,
            "config": str(cfg),
            "storage": paths.storage_label,
            "state": "stopped",
            "study": study_name(view.name, view.digest),
            "metric": "auc",
            "best": {"trial": 3, "value": 0.81},
        }
    )

    def status(*extra: str) -> str:
        done = CliRunner().invoke(agent, ["status", str(cfg), *extra])
        assert done.exit_code == 0, done.output
        return done.output

    assert "STALE" not in status() and json.loads(status("--json"))[0]["stale"] is False
    cfg.write_text(cfg.read_text().replace("epochs=1,", "epochs=3,"))
    line = " ".join(status().split())
    assert "STALE: the config or its data changed since study" in line
    assert f"`helix-tf agent start {cfg}` searches the config as it is now" in line
    assert json.loads(status("--json"))[0]["stale"] is True
    from helix_tf.cli import main

    overview = CliRunner().invoke(main, ["status", str(cfg)])
    assert "agent: not running, best auc 0.8100, STALE" in overview.output, overview.output
    cfg.write_text(cfg.read_text().replace("epochs=3,", "epochs=(3,"))  # does not compile
    assert "cannot tell whether its study is of the config now" in status()


def test_a_damaged_study_database_is_named_with_the_fix_and_no_agent_starts(cfg: Path) -> None:
    """Before: `agent report` and `agent apply` printed SQLAlchemy's traceback ("database
    disk image is malformed"), and `agent start` said "agent started" for an agent that
    failed at once (its status said why)."""
    from click.testing import CliRunner

    from helix_tf.agent.commands import agent
    from helix_tf.errors import StoreError

    view = history.describe(cfg, validation=Validation())
    paths = AgentPaths.of(cfg)
    open_study(paths, study_name(view.name, view.digest), create=True)
    for side in ("-wal", "-shm"):
        Path(f"{paths.study_db}{side}").unlink(missing_ok=True)
    paths.study_db.write_bytes(b"a disk fault wrote this " * 200)
    with pytest.raises(StoreError, match=r"study database .*study\.db is damaged .*mv "):
        load_report(cfg)
    for command in (["report", str(cfg)], ["start", str(cfg), "--wait", "5"]):
        done = CliRunner().invoke(agent, command)
        assert done.exit_code == 1 and "is damaged" in done.output, done.output
    assert paths.read_status() is None  # no agent process was started
