"""The study: WAL SQLite beside the store, orphan recovery, rebasing onto a new version."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from optuna.trial import TrialState

from helix_tf import search
from helix_tf.agent._study import AgentPaths, fail_orphans, open_study, rebase, suggest

SPACE = search.SearchSpace(
    dimensions={"learner.l2": search.Float(1e-6, 1e-2, log=True), "m": search.Choice("a", "b")},
    current={"learner.l2": 0.0, "m": "a"},
    declared=True,
)


def _paths(tmp_path: Path) -> AgentPaths:
    return AgentPaths(home=tmp_path / ".helix")


def test_storage_is_wal_sqlite_beside_the_store(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    open_study(paths, "w@1", create=True)
    assert paths.study_db.parent == tmp_path / ".helix" / "agent"
    with sqlite3.connect(paths.study_db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert open_study(paths, "w@missing", create=False) is None


def test_orphaned_running_trials_are_failed_and_queued_again(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    study = open_study(paths, "w@1", create=True)
    trial = study.ask()
    params = suggest(trial, SPACE)  # then the agent "dies": the trial stays RUNNING
    again = open_study(paths, "w@1", create=True)
    assert fail_orphans(again) == [trial.number]
    states = [t.state for t in again.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    assert suggest(again.ask(), SPACE) == params


def test_a_new_version_starts_from_the_previous_best(tmp_path: Path) -> None:
    import optuna

    paths = _paths(tmp_path)
    old = open_study(paths, "w@1", create=True)
    dist = {"learner.l2": optuna.distributions.FloatDistribution(1e-6, 10.0, log=True)}
    for l2, value in ((1e-3, 0.7), (1e-4, 0.9), (5.0, 0.95)):  # 5.0: outside the new space
        old.add_trial(
            optuna.trial.create_trial(params={"learner.l2": l2}, distributions=dist, value=value)
        )
    new = open_study(paths, "w@2", create=True)
    assert rebase(new, paths, "w", SPACE, top=2) == ["w@1#1"]  # best two: 5.0 no longer fits
    queued = suggest(new.ask(), SPACE)
    assert queued["learner.l2"] == 1e-4 and queued["m"] in ("a", "b")
    assert rebase(new, paths, "w", SPACE) == []  # only a study without trials is rebased


def test_readers_never_see_database_is_locked_while_the_agent_writes(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    study = open_study(paths, "w@1", create=True)
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        reader = open_study(paths, "w@1", create=False)
        while not done.is_set():
            try:
                reader.get_trials(deepcopy=False)
                dict(reader.user_attrs)
            except BaseException as exc:  # "database is locked" would land here
                errors.append(exc)
                return

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(20):
        trial = study.ask()
        suggest(trial, SPACE)
        study.set_user_attr(f"k{i}", i)
        study.tell(trial, float(i))
    done.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_an_unreachable_study_database_is_named_without_its_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    from helix_tf.errors import StoreError

    paths = AgentPaths(home=tmp_path, metadata="postgresql://ann:s3cret@127.0.0.1:1/helix")
    with pytest.raises(StoreError, match=r"ann:\*\*\*@127.0.0.1:1/helix.*server running") as caught:
        open_study(paths, "w@1", create=True)
    assert "s3cret" not in str(caught.value)
