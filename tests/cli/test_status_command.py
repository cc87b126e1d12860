"""``helix-tf status CONFIG``: the last run, what changed since, what a run would do —
and it writes nothing, not even an empty store."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from helix_tf.cli import main
from tests.conftest import TINY_CENSUS, write_config


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def status_json(*args: object) -> dict:
    result = invoke("status", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_before_any_run_status_says_so_and_creates_no_store(
    tiny_census_config: Path, tmp_path: Path
) -> None:
    store = tmp_path / "never"
    result = invoke("status", tiny_census_config, "--store", store)
    assert result.exit_code == 0, result.output
    assert "last run: none yet" in result.stdout
    assert f"no store at {store} yet" in result.stdout
    assert not store.exists()


def test_a_folder_no_run_has_made_a_store_stays_as_it_was(
    tiny_census_config: Path, tmp_path: Path
) -> None:
    # The examples' generated data makes .helix/ before any run: status plans nothing there.
    store = tmp_path / "examples_data_only"
    (store / "sample_data").mkdir(parents=True)
    result = invoke("status", tiny_census_config, "--store", store)
    assert result.exit_code == 0, result.output
    assert "last run: none yet" in result.stdout
    assert [p.name for p in store.iterdir()] == ["sample_data"]


def test_status_follows_runs_and_edits(census_like: tuple[Path, Path], tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])
    store = tmp_path / "store"
    ran = invoke("run", config, "--store", store, "--json")
    assert ran.exit_code == 0, ran.output
    metrics = json.loads(ran.stdout)["metrics"]

    same = status_json(config, "--store", store)
    assert same["workflow"] == "tiny_census"
    assert same["last_run"]["run"] == 1 and same["last_run"]["version"] == 1
    assert same["last_run"]["metrics"] == metrics
    assert same["changes"] == {}
    assert same["plan"]["compute"] == 0
    text = invoke("status", config, "--store", store).stdout
    assert "unchanged since v1" in text and "accuracy" in text

    edited = status_json(config, "--store", store, "-p", "learner.learning_rate=0.01")
    assert list(edited["changes"]) == ["learner"]
    assert "learner.learning_rate 0.05 → 0.01" in edited["changes"]["learner"][0]
    planned = json.loads(
        invoke(
            "plan", config, "--store", store, "--json", "-p", "learner.learning_rate=0.01"
        ).stdout
    )
    computed = [n for n in planned["nodes"] if n["state"] == "compute"]
    assert edited["plan"]["compute"] == len(computed) > 0
    assert edited["plan"]["nodes"] == len(planned["nodes"])
    text = invoke("status", config, "--store", store, "-p", "learner.learning_rate=0.01").stdout
    assert "changed since v1 (1 node(s)):" in text and "learner.learning_rate" in text

    # Run the edit (v2), then ask about the config as it is (v1 again): everything it needs
    # is stored, and it differs from the last run's v2 (said "unchanged since v2").
    assert (
        invoke("run", config, "--store", store, "-p", "learner.learning_rate=0.01").exit_code == 0
    )
    back = status_json(config, "--store", store)
    assert back["last_run"]["version"] == 2 and back["plan"]["compute"] == 0
    assert back["changes"] == {"learner": ["learner.learning_rate 0.01 → 0.05"]}
    assert "changed since v2 (1 node(s)):" in invoke("status", config, "--store", store).stdout
    assert invoke("run", config, "--store", store).exit_code == 0  # v1 again: the last run
    assert status_json(config, "--store", store)["changes"] == {}

    # A code edit in the config file is named too; nothing ran since, so v1 is the last.
    text = config.read_text()
    config.write_text(text.replace('F.Numeric("age")', 'F.Bucketize("age", [30, 50])'))
    bucketed = status_json(config, "--store", store)
    assert "age" in bucketed["changes"] and bucketed["last_run"]["run"] == 3
    assert bucketed["plan"]["compute"] >= 3  # age, the examples, the learner...


def test_status_of_a_broken_config_fails_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "broken.py"
    config.write_text("X = (\n")
    result = invoke("status", config, "--store", tmp_path / "store")
    assert result.exit_code == 1
    assert "error:" in result.output and "broken.py" in result.output
    assert "Traceback" not in result.output
