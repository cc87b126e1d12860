"""Every command against PostgreSQL, named by ``--metadata`` or by ``HELIX_TF_METADATA``.

No ``helix_tf.toml`` here (tests/team/test_team_cli.py covers the settings file): each
command family runs once with the option and once with the variable, and each test
checks something only the shared database can hold (a person's previous version, the
other person's runs, the node names of the entries, the agent's study). Nothing may
fall back to the store's own SQLite file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helix_tf.identity import USER_ENV
from helix_tf.settings import METADATA_ENV, database_url
from tests.conftest import ROOT, TINY_CENSUS, write_config
from tests.team._cli import as_json, invoke, states

SOURCES = ("option", "env")


def given(source: str, url: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """The arguments and environment that name the database ``url`` the ``source`` way."""
    return (("--metadata", url), {}) if source == "option" else ((), {METADATA_ENV: url})


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, census_like: tuple[Path, Path], postgres_server: Any
) -> dict[str, Any]:
    """Ann runs naming the database with --metadata, Bob a variant with the variable."""
    folder = tmp_path_factory.mktemp("every")
    url = postgres_server.create_database("every")
    config = write_config(folder, TINY_CENSUS, train=census_like[0], test=census_like[1])
    store = folder / "store"
    # Tiny data preprocesses in ~0.02 s, so the cost-based policy might not keep the examples.
    ann = as_json(
        invoke(
            "run", config, "--store", store, "--json", "--metadata", url,
            "--materialize", "all", user="ann",
        )
    )  # fmt: skip
    bob = as_json(
        invoke(
            "run", config, "--store", store, "-p", "epochs=2", "--json",
            user="bob", env={METADATA_ENV: url},
        )
    )  # fmt: skip
    return {"url": url, "config": config, "store": store, "ann": ann, "bob": bob}


def test_run_records_in_the_shared_database_never_in_sqlite(shared: dict[str, Any]) -> None:
    assert states(shared["ann"])["examples"] == "compute"
    assert states(shared["bob"])["examples"] == "load"
    assert not (shared["store"] / "metadata.db").exists()


@pytest.mark.parametrize("source", SOURCES)
def test_plan_compares_with_ones_own_version_in_the_database(
    shared: dict[str, Any], source: str
) -> None:
    args, env = given(source, shared["url"])
    base = (shared["config"], "--store", shared["store"], "-p", "epochs=3", "--json", *args)
    reasons = {n["name"]: n["reason"] for n in as_json(invoke("plan", *base, env=env))["nodes"]}
    # Ann's previous version (epochs=1) is only in PostgreSQL.
    assert "1 → 3" in reasons["learner"] or "1 -> 3" in reasons["learner"], reasons["learner"]


@pytest.mark.parametrize("source", SOURCES)
def test_history_and_diff_read_both_peoples_runs(shared: dict[str, Any], source: str) -> None:
    args, env = given(source, shared["url"])
    where = (shared["config"], "--store", shared["store"], *args)
    runs = as_json(invoke("history", *where, "--json", user="carl", env=env))
    assert [(r["user"], r["version"]) for r in runs] == [("bob", 2), ("ann", 1)]
    diff = as_json(invoke("diff", *where, "1", "2", "--json", env=env))
    assert (diff["old"], diff["new"]) == (1, 2)
    assert "epochs" in json.dumps(diff)


@pytest.mark.parametrize("source", SOURCES)
def test_report_shows_the_teams_runs(shared: dict[str, Any], source: str, tmp_path: Path) -> None:
    args, env = given(source, shared["url"])
    out = tmp_path / "report.html"
    where = (shared["config"], "--store", shared["store"], *args)
    result = invoke("report", *where, "--html", out, "--team", env=env)
    assert result.exit_code == 0, result.output
    assert "Last 2 run" in out.read_text()


@pytest.mark.parametrize("source", SOURCES)
def test_store_du_names_entries_from_the_database(shared: dict[str, Any], source: str) -> None:
    args, env = given(source, shared["url"])
    du = as_json(invoke("store", "du", "--store", shared["store"], "--json", *args, env=env))
    named = {(r["workflow"], r["node"]) for r in du["nodes"]}
    # Which entries are kept is the materializer's cost-based call (the learner's model
    # may be dropped when retraining is cheap); Ann's run kept everything (the examples
    # among them), and every kept entry is named from the shared database.
    assert ("tiny_census", "examples") in named
    assert all(w == "tiny_census" and not n.startswith("(unnamed") for w, n in named), named


@pytest.fixture(scope="module")
def seeded_study(shared: dict[str, Any]) -> str:
    """A study for the config in the shared database with one finished trial; its name."""
    import optuna

    from helix_tf import history
    from helix_tf.agent._study import AgentPaths, open_study, study_name
    from helix_tf.validation import Validation

    config = shared["config"]
    view = history.describe(config, validation=Validation())
    name = study_name(view.name, view.digest)
    paths = AgentPaths(home=config.parent / "elsewhere", metadata=shared["url"])
    study = open_study(paths, name, create=True)
    study.set_user_attr("metric", "auc")
    dims = {"learner.learning_rate": {"current": 0.05}}
    study.set_user_attr("space", {"dimensions": dims})
    study.add_trial(
        optuna.trial.create_trial(
            params={"learner.learning_rate": 0.1},
            distributions={
                "learner.learning_rate": optuna.distributions.CategoricalDistribution((0.05, 0.1))
            },
            value=0.8,
            user_attrs={"rung_exact": {"metrics": {"auc": 0.8}}},
        )
    )
    return name


@pytest.mark.parametrize("source", SOURCES)
def test_agent_report_and_status_read_the_study_in_the_database(
    shared: dict[str, Any],
    seeded_study: str,
    source: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HELIX_TF_AGENT_REGISTRY", str(tmp_path / "registry"))
    name = seeded_study
    args, env = given(source, shared["url"])
    # A store of this person's own: the study is found in the database, not beside it.
    where = (shared["config"], "--store", tmp_path / "mine", "--json", *args)
    report = as_json(invoke("agent", "report", *where, env=env))
    assert report["study"] == name and "helix_optuna" in report["storage"]
    assert report["trials"] == {"complete": 1}
    assert report["proposals"][0]["overrides"] == {"learner.learning_rate": 0.1}
    (status,) = as_json(invoke("agent", "status", *where, env=env))
    assert status["running"] is False and status["study"] == name
    assert status["best"]["value"] == pytest.approx(0.8)
    text = invoke("agent", "status", shared["config"], "--store", tmp_path / "mine", *args, env=env)
    assert text.exit_code == 0, text.output
    assert "no agent is running" in text.stdout and f"study {name}" in text.stdout
    printed = invoke("agent", "apply", shared["config"], "1", "--print", *args, env=env)
    assert printed.exit_code == 0, printed.output
    assert "learner.learning_rate=0.1" in printed.stdout


def _python_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HELIX_TF_SERVER": "off",
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }


def _lease_with_run(store: Path) -> dict[str, Any] | None:
    for path in (store / "runs").glob("*.json"):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if body.get("run", {}).get("run_id") is not None:
            return body
    return None


def test_one_person_in_the_run_record_the_lease_and_store_gc(
    shared: dict[str, Any], tmp_path: Path, postgres_server: Any
) -> None:
    """HELIX_TF_USER names the person in the run's row, its lease and what gc prints.

    A run (``--metadata``) is killed with SIGKILL once its lease names its run; ``store
    gc`` (the database named by the variable) reports the dead run's owner and marks
    the run killed in PostgreSQL.
    """
    url, store = postgres_server.create_database("who"), tmp_path / "store"
    cmd = [sys.executable, "-m", "helix_tf.cli", "run", str(shared["config"]), "--no-server"]
    proc = subprocess.Popen(
        [*cmd, "--store", str(store), "--metadata", url, "-p", "epochs=30"],
        env=_python_env(**{USER_ENV: "zoe"}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    lease = None
    while lease is None and proc.poll() is None and time.monotonic() < deadline:
        lease = _lease_with_run(store)
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert lease is not None and proc.returncode == -signal.SIGKILL, err[-2000:]
    run_id = lease["run"]["run_id"]
    assert lease["user"] == "zoe"

    gc = as_json(
        invoke("store", "gc", "--store", store, "--json", user="other", env={METADATA_ENV: url})
    )
    assert [(d["user"], d["id"]) for d in gc["dead_run_owners"]] == [("zoe", lease["id"])]
    assert gc["marked_killed"] == [run_id]
    text = invoke("store", "gc", "--store", store, "--metadata", url, user="other")
    assert text.exit_code == 0 and "0 dead run(s)" in text.stdout  # the lease is gone

    import sqlalchemy as sa

    engine = sa.create_engine(database_url(url))
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT user_name, host_name, status FROM runs WHERE id = :i"), {"i": run_id}
        ).one()
    engine.dispose()
    assert (row.user_name, row.host_name, row.status) == ("zoe", lease["host"], "killed")
    runs = as_json(
        invoke("history", shared["config"], "--store", store, "--metadata", url, "--json")
    )
    assert [(r["user"], r["status"]) for r in runs] == [("zoe", "killed")]


SEARCHED = TINY_CENSUS.replace(
    'PARAMS = {"epochs": 1}',
    'from helix_tf import search\n\nPARAMS = {"epochs": 1}\n'
    'SEARCH = {"learner.learning_rate": search.Choice(0.05, 0.5)}',
)


@pytest.mark.slow
def test_agent_start_with_metadata_runs_and_studies_in_the_database(
    tmp_path: Path, census_like: tuple[Path, Path], postgres_server: Any
) -> None:
    """``agent start --metadata``: the agent's runs and its study go to PostgreSQL only."""
    url = postgres_server.create_database("agent")
    config = write_config(tmp_path, SEARCHED, train=census_like[0], test=census_like[1])
    store = tmp_path / "store"
    env = _python_env(HELIX_TF_AGENT_REGISTRY=str(tmp_path / "registry"), **{USER_ENV: "ann"})
    env.pop(METADATA_ENV, None)

    def cli(*args: Any) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "helix_tf.cli", *[str(a) for a in args]]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

    where = (config, "--store", store, "--metadata", url)
    started = cli("agent", "start", *where, "--trials", "1", "--resume-after", "0")
    assert started.returncode == 0 and "helix_optuna" in started.stdout, started.stderr
    status_file = store / "agent" / "status.json"
    deadline = time.monotonic() + 600
    state: dict[str, Any] = {}
    while time.monotonic() < deadline and state.get("state") not in ("done", "failed"):
        time.sleep(0.5)
        try:
            state = json.loads(status_file.read_text())
        except (OSError, ValueError):
            continue
    assert state.get("state") == "done", state
    assert "helix_optuna" in state["storage"]
    report = cli("agent", "report", *where, "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["trials"].get("complete", 0) >= 1
    runs = cli("history", *where, "--agent", "--json")
    assert runs.returncode == 0, runs.stderr
    assert any(r["user"] == "ann" for r in json.loads(runs.stdout))
    # Nothing went to the store's own SQLite files.
    assert not (store / "metadata.db").exists() and not (store / "agent" / "study.db").exists()
