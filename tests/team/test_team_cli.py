"""Team mode through the CLI: two people share one store and one PostgreSQL database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from helix_tf.settings import METADATA_ENV
from tests.conftest import TINY_CENSUS, write_config
from tests.team._cli import as_json, invoke, states


@pytest.fixture(scope="module")
def team(
    tmp_path_factory: pytest.TempPathFactory, census_like: tuple[Path, Path], postgres_server
) -> dict[str, Any]:
    """Ann runs, Bob runs a variant, Ann reruns hers: on one store and one database.

    The database is named once, in the project's helix_tf.toml (no --metadata).
    """
    folder = tmp_path_factory.mktemp("team")
    url = postgres_server.create_database("team")
    (folder / "helix_tf.toml").write_text(f'metadata = "{url}"\n')
    config = write_config(
        folder / "configs", TINY_CENSUS, train=census_like[0], test=census_like[1]
    )
    base = (config, "--store", folder / "store", "--json")
    # Everything stored: the helix policy may not store a tiny run's preprocessing.
    ann = as_json(invoke("run", *base, "--materialize", "all", user="ann"))
    bob = as_json(invoke("run", *base, "-p", "epochs=2", user="bob"))
    return {
        "url": url,
        "config": config,
        "base": base,
        "ann": ann,
        "bob": bob,
        "ann_plan": as_json(invoke("plan", *base, "-p", "epochs=3", user="ann")),
        "ann_plan_team": as_json(invoke("plan", *base, "-p", "epochs=3", "--team", user="ann")),
        "history": as_json(invoke("history", *base, user="carl")),
        "mine": as_json(invoke("history", *base, "--mine", user="bob")),
    }


def test_bob_loads_what_ann_computed(team: dict[str, Any]) -> None:
    ann, bob = states(team["ann"]), states(team["bob"])
    assert ann["examples"] == "compute"
    assert bob["examples"] == "load" and bob["learner"] == "compute"


def test_history_shows_who_ran_what_and_mine_keeps_ones_own(team: dict[str, Any]) -> None:
    assert [(e["user"], e["version"]) for e in team["history"]] == [("bob", 2), ("ann", 1)]
    assert all(e["host"] for e in team["history"])
    assert [e["user"] for e in team["mine"]] == ["bob"]
    table = invoke("history", *team["base"][:-1], user="ann")
    assert table.exit_code == 0, table.output
    assert "ann@" in table.stdout and "bob@" in table.stdout


def test_a_persons_previous_version_stays_their_own(team: dict[str, Any]) -> None:
    # Ann's plan of epochs=3 compares with her version (epochs=1); with --team, with
    # Bob's latest (epochs=2).
    mine = {n["name"]: n["reason"] for n in team["ann_plan"]["nodes"]}
    theirs = {n["name"]: n["reason"] for n in team["ann_plan_team"]["nodes"]}
    assert "1 → 3" in mine["learner"] or "1 -> 3" in mine["learner"], mine["learner"]
    assert "2 → 3" in theirs["learner"] or "2 -> 3" in theirs["learner"], theirs["learner"]
    # diff: NEW defaults to one's own latest version.
    ann_diff = as_json(invoke("diff", *team["base"][:-1], "1", "--json", user="ann"))
    assert ann_diff["new"] == 1
    team_diff = as_json(invoke("diff", *team["base"][:-1], "1", "--json", "--team", user="ann"))
    assert team_diff["new"] == 2


def test_report_is_ones_own_unless_team(team: dict[str, Any], tmp_path: Path) -> None:
    config, store = team["base"][0], team["base"][2]
    for flag, expected in [((), 1), (("--team",), 2)]:
        out = tmp_path / f"r{len(flag)}.html"
        result = invoke("report", config, "--store", store, "--html", out, *flag, user="ann")
        assert result.exit_code == 0, result.output
        assert f"Last {expected} run" in out.read_text()


def test_an_unreachable_database_is_named_with_its_source(
    team: dict[str, Any], tmp_path: Path
) -> None:
    bad = "postgresql://ann:s3cret@127.0.0.1:1/helix"
    began = time.monotonic()
    result = invoke("plan", team["config"], "--store", tmp_path, env={METADATA_ENV: bad})
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "ann:***@127.0.0.1:1/helix" in message and "s3cret" not in message
    assert f"set by {METADATA_ENV}" in message and "is the database server running" in message
    assert time.monotonic() - began < 30


def test_the_agents_study_lives_in_the_shared_database(
    team: dict[str, Any], tmp_path: Path
) -> None:
    import sqlalchemy as sa

    from helix_tf.agent._study import OPTUNA_SCHEMA, AgentPaths, open_study
    from helix_tf.settings import database_url

    paths = AgentPaths.of(team["config"], str(tmp_path))  # the URL from helix_tf.toml
    assert paths.metadata == team["url"]
    study = open_study(paths, "tiny_census@1", create=True)
    study.enqueue_trial({"x": 1})
    again = open_study(
        AgentPaths.of(team["config"], str(tmp_path / "elsewhere")), "tiny_census@1", create=False
    )
    assert len(again.get_trials()) == 1
    engine = sa.create_engine(database_url(team["url"]))
    with engine.connect() as conn:
        schemas = dict(
            conn.execute(
                sa.text(
                    "SELECT table_name, table_schema FROM information_schema.tables "
                    "WHERE table_name IN ('trials', 'runs')"
                )
            ).all()
        )
    engine.dispose()
    assert schemas == {"trials": OPTUNA_SCHEMA, "runs": "public"}
